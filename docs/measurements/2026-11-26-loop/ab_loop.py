"""The HTTP layer, old tree against new, where it is the wall: the tiny bundle (inference nearly free), both
servers up, interleaved rounds of the benchmark's closed-loop step (64 clients x 1 sentence, 16 x 8).

    git worktree add /tmp/base <old commit> && ln -s $PWD/build /tmp/base/build
    PYTHONPATH=. python docs/measurements/2026-11-26-loop/ab_loop.py /tmp/base . build/tiny > ab_loop.log
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loadtest.load import step
from service.precision import cpu_info

old, new, bundle = (Path(a).resolve() for a in sys.argv[1:4])
texts = (new / "loadtest/corpus.txt").read_text().splitlines()
dims = json.loads((bundle / "config.json").read_text())["serving"]["dimensions"]  # what each answer is checked for
print("cpu:", cpu_info()[0], "| cores:", len(os.sched_getaffinity(0)), flush=True)
servers = {}
for name, root, port in (("old", old, 8111), ("new", new, 8112)):
    proc = subprocess.Popen([sys.executable, "-m", "attnserve", "serve", "--model", str(bundle), "--port", str(port),
                             "--log-level", "warning"], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    servers[name] = (proc, port)
print("round tree step requests/s loop_cpu_ms_per_request p99_ms")
for rnd in range(3):
    for name in ("old", "new") if rnd % 2 == 0 else ("new", "old"):
        proc, port = servers[name]
        for c, per in ((64, 1), (16, 8)):
            s = step(f"http://127.0.0.1:{port}", name, texts, c, 6, dims, proc.pid, per)
            loop_ms = round(s.breakdown_ms["cpu: event loop"], 3)
            print("RESULT", rnd, name, f"{c}x{per}", round(s.requests_per_s), loop_ms, round(s.p99_ms), flush=True)
for proc, _ in servers.values():
    proc.terminate()
