"""Which input dimension makes unfused (SNIPPETS_MODE=DISABLE) keep memory: tokens T, or attention's rows x width?"""

import random
import sys
from pathlib import Path

import numpy as np
import openvino as ov

from bundle.packing import Buckets, pack

mode, exp = sys.argv[1], sys.argv[2]
OPTIONS = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1} | (
    {"SNIPPETS_MODE": "DISABLE"} if mode == "unfused" else {}
)


def rss():
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


core = ov.Core()
compiled = core.compile_model(core.read_model("build/minilm/model_packed.onnx"), "CPU", OPTIONS)
req = compiled.create_infer_request()
rng = random.Random(0)


def seq(n):
    return np.arange(n, dtype=np.int64) % 1000 + 100


if exp == "tokens":  # rows 64 and width 64 fixed, T varies
    bk = Buckets(rows=64, width=64, tokens=32)
    shapes = [[seq(64)] + [seq(rng.randint(1, 64)) for _ in range(k)] for k in range(0, 62)]
    rng.shuffle(shapes)
elif exp == "rows":
    bk = Buckets(rows=2, width=8, tokens=2048)
    shapes = [[seq(64)] + [seq(1)] * (b - 1) for b in range(1, 64, 2)]
elif exp == "width":
    bk = Buckets(rows=2, width=8, tokens=2048)
    shapes = [[seq(w)] + [seq(1)] * 15 for w in range(8, 513, 8)]
else:  # T fixed at 2048, rows and width vary
    bk = Buckets(rows=2, width=8, tokens=2048)
    shapes = [[seq(w)] + [seq(1)] * (b - 1) for b in range(1, 33, 2) for w in range(8, 65, 8)]
    rng.shuffle(shapes)
seen = set()
req.infer(pack([seq(64)] * 63, bk)[0])
req.infer(pack([seq(512)] + [seq(1)] * 62, Buckets(rows=2, width=8, tokens=2048))[0])
base = rss()
for rep in range(2):
    for s in shapes:
        f = pack(s, bk)[0]
        seen.add((f["slots"].shape, f["input_ids"].shape))
        req.infer(f)
    print(
        f"{mode} {exp} pass {rep}: {len(seen)} shapes, RSS {rss()} MB (+{rss() - base} after first batch)", flush=True
    )
