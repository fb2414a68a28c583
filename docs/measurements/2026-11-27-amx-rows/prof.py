"""Per-node time of the packed graph in bf16 (OpenVINO PERF_COUNT), on realistic 16x8-like batches."""

import collections
import sys

import openvino as ov
from steady import corpus_batches  # this folder is on sys.path when the script runs

from bundle.packing import Buckets, pack

graph = sys.argv[1] if len(sys.argv) > 1 else "build/minilm/model_packed.onnx"
batches = [pack(b, Buckets())[0] for b in corpus_batches(200)]
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
