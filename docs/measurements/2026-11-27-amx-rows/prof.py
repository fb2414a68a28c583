"""Per-node time of the packed graph in bf16 (OpenVINO PERF_COUNT), on realistic 16x8-like batches."""

import collections
import random
import sys

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

from bundle.packing import Buckets, pack
from loadtest.checks import load_corpus

graph = sys.argv[1] if len(sys.argv) > 1 else "build/minilm/model_packed.onnx"
tok = Tokenizer.from_file("build/minilm/tokenizer.json")
tok.no_truncation()
tok.no_padding()
ids = [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(load_corpus(paragraphs=False))]
ids.sort(key=len)
rng = random.Random(1)
batches = []
for _ in range(200):
    n = rng.randint(8, 32)
    s = rng.randint(0, len(ids) - n)
    batches.append(pack(ids[s : s + n], Buckets())[0])
core = ov.Core()
c = core.compile_model(
    core.read_model(graph),
    "CPU",
    {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERF_COUNT": True},
)
r = c.create_infer_request()
for f in batches:
    r.infer(f)
by_type, by_exec, total = collections.Counter(), collections.Counter(), 0.0
for f in batches:
    r.infer(f)
    for p in r.profiling_info:
        us = p.real_time.total_seconds() * 1e6
        by_type[p.node_type] += us
        by_exec[(p.node_type, p.exec_type)] += us
        total += us
print(f"total {total / len(batches):.0f} us per batch")
for k, v in by_type.most_common(14):
    print(f"  {k:20s} {100 * v / total:5.1f}%")
for k, v in by_exec.most_common(12):
    print(f"  {k!s:60s} {100 * v / total:5.1f}%")
by_name = collections.Counter()
for f in batches:
    r.infer(f)
    for p in r.profiling_info:
        if p.node_type in ("Transpose", "GatherND", "Reorder", "Eltwise", "Add", "MulAdd"):
            by_name[p.node_name.rstrip("0123456789_")] += p.real_time.total_seconds() * 1e6
for k, v in by_name.most_common(15):
    print(f"  {k:50s} {100 * v / total:5.1f}%")
