"""RSS over many random batches (unfused_buckets.py's make-up), fused bf16, service's compile; one variant a process.

PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-27-amx-rows/mem.py VARIANT 5000
"""

import random
import sys

import numpy as np
import openvino as ov
from steady import VARIANTS, pack2, rss  # this folder is on sys.path when the script runs

name, count = sys.argv[1], int(sys.argv[2])
rs, ws, ts, er, cap = VARIANTS[name]
core = ov.Core()
c = core.compile_model(
    core.read_model("build/minilm/model_packed.onnx"),
    "CPU",
    {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 2}
    | ({"CPU_RUNTIME_CACHE_CAPACITY": cap} if cap else {}),
)
reqs = [c.create_infer_request() for _ in range(2)]
rng = random.Random(0)
for r in reqs:
    r.infer(pack2([np.arange(256) % 1000 + 100] * 32, rs, ws, ts, er))
print(name, "after the largest batch", rss(), flush=True)
for i in range(1, count + 1):
    lengths = [rng.randint(5, 60) for _ in range(rng.randint(1, 32))]
    if i % 50 == 0:
        lengths[0] = rng.randint(60, 256)
    reqs[i % 2].infer(pack2([np.arange(n, dtype=np.int64) % 1000 + 100 for n in lengths], rs, ws, ts, er))
    if i % 1000 == 0:
        print(f"  {name} {i} batches {rss()} MB", flush=True)
