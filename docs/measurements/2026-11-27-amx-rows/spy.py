"""bf16 server under 16 clients x 8 sentences while py-spy (at /tmp/pyspy) records every thread for 10 s.

PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-27-amx-rows/spy.py OUT.raw
"""

import subprocess
import sys
from pathlib import Path

from loadtest.checks import load_corpus
from loadtest.load import step
from loadtest.servers import start_server

texts = load_corpus(paragraphs=False)
base = {"ATTNSERVE_ENGINE": "openvino", "ATTNSERVE_PRECISION": "bf16", "ATTNSERVE_PROVIDER": "cpu"}
proc, _ = start_server(Path("build/minilm"), 8833, base, Path("/tmp/spy-server.log"))
try:
    url = "http://127.0.0.1:8833"
    step(url, "encode", texts, 16, 4, 384, proc.pid, per_request=8)
    spy = subprocess.Popen(
        [
            "/tmp/pyspy/bin/py-spy",
            "record",
            "-p",
            str(proc.pid),
            "-r",
            "200",
            "-d",
            "10",
            "--threads",
            "-f",
            "raw",
            "-o",
            sys.argv[1],
            "--nonblocking",
        ]
    )
    s = step(url, "encode", texts, 16, 12, 384, proc.pid, per_request=8)
    spy.wait()
    print(f"16x8 {s.sequences_per_s:.0f} seq/s batch {s.mean_batch_size:.1f}; {s.breakdown_ms}")
finally:
    proc.terminate()
    proc.wait()
