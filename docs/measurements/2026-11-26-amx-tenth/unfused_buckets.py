"""Does unfused attention (OpenVINO's SNIPPETS_MODE=DISABLE) keep its memory bounded now that packed batches come in
bucketed shapes, and what does it gain there? bf16, MiniLM's packed graph, bundle.packing's default buckets: RSS over
COUNT batches of random make-up on the service's compile (2 streams x 1 thread), then speed over 300 known batches,
one stream on one thread and two streams of one thread each (two requests at once, as the service's two workers).

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-26-amx-tenth/unfused_buckets.py \
        3000 fused|unfused [CPU_RUNTIME_CACHE_CAPACITY]     (BIG_FIRST=1: the largest batch first)
"""

import os
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import openvino as ov

from bundle.packing import Buckets, pack

count, mode = int(sys.argv[1]), sys.argv[2]
OPTIONS = {"INFERENCE_PRECISION_HINT": "bf16"} | ({"SNIPPETS_MODE": "DISABLE"} if mode == "unfused" else {})
if len(sys.argv) > 3:
    OPTIONS["CPU_RUNTIME_CACHE_CAPACITY"] = int(sys.argv[3])


def rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


core = ov.Core()
model = core.read_model("build/minilm/model_packed.onnx")
rng = random.Random(0)


def batch(long: bool) -> list[np.ndarray]:
    lengths = [rng.randint(5, 60) for _ in range(rng.randint(1, 32))]
    if long:
        lengths[0] = rng.randint(60, 256)
    return [np.arange(n, dtype=np.int64) % 1000 + 100 for n in lengths]


print(f"{mode}, bf16, buckets {Buckets()}, {OPTIONS}", flush=True)
compiled = core.compile_model(model, "CPU", OPTIONS | {"INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 2})
requests = [compiled.create_infer_request() for _ in range(2)]
print(f"  start {rss()} MB", flush=True)
if os.environ.get("BIG_FIRST"):  # the largest batch first: do buffers sized by the largest input explain the growth?
    for r in requests:
        r.infer(pack([np.arange(256, dtype=np.int64) % 1000 + 100] * 32, Buckets())[0])
    print(f"  after one batch of 32 x 256 tokens on each stream {rss()} MB", flush=True)
for i in range(1, count + 1):
    requests[i % 2].infer(pack(batch(i % 50 == 0), Buckets())[0])
    if i % 500 == 0:
        print(f"  {i} batches {rss()} MB", flush=True)
batches = [pack(batch(False), Buckets())[0] for _ in range(300)]
tokens = sum(int(f["attention_mask"].sum()) for f in batches)
one = core.compile_model(model, "CPU", OPTIONS | {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
request = one.create_infer_request()
for _ in range(3):
    started = time.perf_counter()
    for f in batches:
        request.infer(f)
    rate = tokens / (time.perf_counter() - started)
print(f"  one stream x 1 thread, third pass over 300 batches: {rate:.0f} tokens/s", flush=True)


def worker(r, part):
    for f in part:
        r.infer(f)


for _ in range(3):
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(requests[k], batches[k::2])) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = tokens / (time.perf_counter() - started)
print(f"  two streams x 1 thread, third pass: {rate:.0f} tokens/s; RSS {rss()} MB", flush=True)
