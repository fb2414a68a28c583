"""The packed graph before (masks by Where and Mul, gathers as GatherND: "where", the bundle the commit before
exported, kept in /tmp/minilm_old) and after (additive masks, Gather: "new"), one call per case on one thread:
OpenVINO with attention unfused (as the workers run it) in bf16, or ONNX Runtime fp32. Medians of 7 calls, best of
3 rounds; the last column is each graph's largest difference from the old one's output.

    .venv/bin/python docs/measurements/2026-11-26-amx-unfused/packed_graphs_ab.py bf16 1
    .venv/bin/python docs/measurements/2026-11-26-amx-unfused/packed_graphs_ab.py ort 1
"""

import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
import openvino as ov

from bundle.packing import pack

engine, threads = sys.argv[1], int(sys.argv[2])
paths = {"where": "/tmp/minilm_old/model_packed.onnx", "new": "build/minilm/model_packed.onnx"}
runs = {}
for name, path in paths.items():
    if engine == "ort":
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        runs[name] = lambda feeds, s=session: s.run(None, feeds)[0]
    else:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "INFERENCE_PRECISION_HINT": engine, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "SNIPPETS_MODE": "DISABLE"})
        request = compiled.create_infer_request()
        runs[name] = lambda feeds, r=request: np.asarray(r.infer(feeds)[0]).copy()

rng = np.random.default_rng(0)
cases = {"32x20": [20] * 32, "31x20+1x30": [20] * 31 + [30], "32x40": [40] * 32, "32x10": [10] * 32,
         "live24": list(rng.integers(12, 30, 24)), "4x20": [20] * 4, "1x20": [20]}
total = dict.fromkeys(runs, 0.0)
for case, lengths in cases.items():
    feeds, _ = pack([np.arange(n, dtype=np.int64) % 1000 + 100 for n in lengths])
    reference = runs["where"](feeds)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):
        for name, call in runs.items():
            call(feeds)
            call(feeds)
            calls = []
            for _ in range(7):
                started = time.perf_counter()
                call(feeds)
                calls.append(time.perf_counter() - started)
            times[name].append(1000 * statistics.median(calls))
    diffs = [float(np.abs(call(feeds) - reference).max()) for call in runs.values()]
    for name in runs:
        total[name] += min(times[name])
    print(f"{case:12s}", " ".join(f"{name} {min(t):7.2f}" for name, t in times.items()), "| maxdiff",
          " ".join(f"{d:.1e}" for d in diffs))
print("sum", " ".join(f"{name} {t:.1f} ({t / total['where']:.3f})" for name, t in total.items()))
