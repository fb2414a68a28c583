"""How OpenVINO's memory grows with the packed graph's input shapes, in bf16, as the service compiles it for its
workers (2 streams x 1 thread), with extra compile options: RSS after every 500 batches of random make-up (1-32
sequences of 5-60 tokens, one of 60-256 every 50th), each batch a new shape almost always, then the speed of one
stream over 300 batches seen before (third pass over them) and the RSS then.

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-26-amx-unfused/shape_memory.py 3000 '{}' \
        '{"SNIPPETS_MODE": "DISABLE"}' '{"CPU_RUNTIME_CACHE_CAPACITY": "1000"}'
"""

import subprocess
import sys

CHILD = r"""
import json, random, sys, time
import numpy as np
import openvino as ov
from bundle.packing import pack

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

mode, count, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
core = ov.Core()
model = core.read_model("build/minilm/model_packed.onnx")
streams, threads = (2, 2) if mode == "growth" else (1, 1)
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads,
                                             "NUM_STREAMS": streams, **extra})
requests = [compiled.create_infer_request() for _ in range(streams)]
rng = random.Random(0)
def batch(long):
    lengths = [rng.randint(5, 60) for _ in range(rng.randint(1, 32))]
    if long:
        lengths[0] = rng.randint(60, 256)
    return pack([np.arange(n, dtype=np.int64) % 1000 + 100 for n in lengths])[0]
if mode == "growth":
    print(f"  start {rss()} MB", flush=True)
    for i in range(1, count + 1):
        requests[i % 2].infer(batch(i % 50 == 0))
        if i % 500 == 0:
            print(f"  {i} batches {rss()} MB", flush=True)
else:
    batches = [batch(False) for _ in range(300)]
    tokens = sum(len(f["input_ids"]) for f in batches)
    for p in range(3):
        started = time.perf_counter()
        for feeds in batches:
            requests[0].infer(feeds)
        rate = tokens / (time.perf_counter() - started)
    print(f"  speed, third pass over 300 batches: {rate:.0f} tokens/s, {rss()} MB", flush=True)
"""

count, configs = int(sys.argv[1]), sys.argv[2:]
for config in configs:
    print(f"extra compile options {config}", flush=True)
    for mode in ("growth", "speed"):
        subprocess.run([sys.executable, "-c", CHILD, mode, str(count), config], check=True)
