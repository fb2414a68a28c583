"""One server, the benchmark's closed-loop step at each CLIENTSxSENTENCES, the full breakdown of a request's time
and CPU. Settings come from the environment (ATTNSERVE_ENGINE=openvino ATTNSERVE_GRAPH=packed ...).

    PYTHONPATH=. SECS=6 python docs/measurements/2026-11-26-packed-ov/probe.py build/minilm 8122 1x1,64x1,16x8
"""

import json
import os
import sys
from pathlib import Path

from loadtest.load import step
from loadtest.servers import start_server

bundle, port, steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
texts = Path("loadtest/corpus.txt").read_text().splitlines()
dims = json.loads((bundle / "config.json").read_text())["serving"]["dimensions"]
proc, _ = start_server(bundle, port, {}, Path(os.devnull))
for spec in steps:
    c, per = (int(x) for x in spec.split("x"))
    s = step(f"http://127.0.0.1:{port}", "x", texts, c, float(os.environ.get("SECS", 8)), dims, proc.pid, per)
    print(spec, round(s.requests_per_s), "req/s", round(s.requests_per_s * per), "seq/s p99", round(s.p99_ms),
          {k: round(v, 3) for k, v in s.breakdown_ms.items()}, flush=True)
proc.terminate()
