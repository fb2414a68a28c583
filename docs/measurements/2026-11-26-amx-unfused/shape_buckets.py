"""The next step's question, measured before it is built: if the packed graph only ever saw a bounded set of shapes
(rows rounded up to a multiple of ROWS, width to a multiple of WIDTH, total tokens to a multiple of TOKENS; extra
rows all padding, extra tokens pointed at a padding slot and dropped), would OpenVINO's memory level off, and what
would the extra padding cost? bf16, the service's compile (2 streams x 1 thread) for the growth, one stream on one
thread for the speed; the same random batches as shape_memory.py.

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-26-amx-unfused/shape_buckets.py 3000 2 8 32 [f32]
"""

import random
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov

from bundle.packing import pack

count, ROWS, WIDTH, TOKENS = (int(a) for a in sys.argv[1:5])
PRECISION = sys.argv[5] if len(sys.argv) > 5 else "bf16"


def rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def bucketed(sequences: list[np.ndarray]) -> dict[str, np.ndarray]:
    """pack()'s inputs with rows, width and tokens rounded up; the real tokens' outputs are rows 0..T-1 as before."""
    feeds, offsets = pack(sequences)
    b, s = feeds["slots"].shape
    t = int(offsets[-1])
    rows, width = -(-(b + 1) // ROWS) * ROWS, -(-s // WIDTH) * WIDTH  # at least one all-padding row
    tokens = -(-t // TOKENS) * TOKENS
    slots = np.zeros((rows, width), dtype=np.int64)
    slots[:b, :s] = feeds["slots"]
    mask = np.zeros((rows, width), dtype=np.int64)
    mask[:b, :s] = feeds["attention_mask"]
    keep = np.full(tokens, b * width, dtype=np.int64)  # extra tokens: the first slot of the padding row b
    real = feeds["keep"]
    keep[:t] = (real // s) * width + real % s  # the same slots in the wider layout
    return {"input_ids": np.concatenate([feeds["input_ids"], np.zeros(tokens - t, dtype=np.int64)]),
            "positions": np.concatenate([feeds["positions"], np.zeros(tokens - t, dtype=np.int64)]),
            "slots": slots, "keep": keep, "attention_mask": mask}


core = ov.Core()
model = core.read_model("build/minilm/model_packed.onnx")
rng = random.Random(0)


def batch(long: bool) -> list[np.ndarray]:
    lengths = [rng.randint(5, 60) for _ in range(rng.randint(1, 32))]
    if long:
        lengths[0] = rng.randint(60, 256)
    return [np.arange(n, dtype=np.int64) % 1000 + 100 for n in lengths]


print(f"{PRECISION}: rows to a multiple of {ROWS}, width of {WIDTH}, tokens of {TOKENS}", flush=True)
# the bucketed inputs give the same real-token outputs (f32, one call)
check = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
sample = batch(True)
exact, wide = check.infer(pack(sample)[0])[0], check.infer(bucketed(sample))[0]
print(f"  real tokens' largest difference, f32: {np.abs(np.asarray(wide)[: len(exact)] - exact).max():.2e}")
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": PRECISION, "INFERENCE_NUM_THREADS": 2,
                                             "NUM_STREAMS": 2})
requests = [compiled.create_infer_request() for _ in range(2)]
print(f"  start {rss()} MB", flush=True)
for i in range(1, count + 1):
    requests[i % 2].infer(bucketed(batch(i % 50 == 0)))
    if i % 500 == 0:
        print(f"  {i} batches {rss()} MB", flush=True)
one = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": PRECISION, "INFERENCE_NUM_THREADS": 1,
                                        "NUM_STREAMS": 1}).create_infer_request()
batches = [batch(False) for _ in range(300)]
tokens = sum(len(s) for b in batches for s in b)
for name, make in (("exact", lambda b: pack(b)[0]), ("bucketed", bucketed)):
    feeds = [make(b) for b in batches]
    for _ in range(3):
        started = time.perf_counter()
        for f in feeds:
            one.infer(f)
        rate = tokens / (time.perf_counter() - started)
    print(f"  speed, third pass over 300 batches, {name}: {rate:.0f} real tokens/s", flush=True)
