"""One sentence at a time: OpenVINO bf16 (padded graph on 2 threads, f32, a latency hint, unfused) against ONNX Runtime
fp32's optimized graph on 2 threads.

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-27-amx-rows/c1.py
"""

import statistics
import time

import numpy as np
import onnxruntime as ort
import openvino as ov
from tokenizers import Tokenizer

from bundle.packing import pack
from loadtest.checks import load_corpus

tok = Tokenizer.from_file("build/minilm/tokenizer.json")
tok.no_truncation()
tok.no_padding()
ids = [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(load_corpus(paragraphs=False))][:300]
core = ov.Core()


def ovrun(path, threads, packed=False, prec="bf16", extra=None):
    c = core.compile_model(
        core.read_model(path),
        "CPU",
        {"INFERENCE_PRECISION_HINT": prec, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1} | (extra or {}),
    )
    r = c.create_infer_request()
    names = [p.get_any_name() for p in c.inputs]

    def f(x):
        if packed:
            return r.infer(pack([x])[0])
        feeds = {"input_ids": x[None], "attention_mask": np.ones_like(x)[None]}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(x)[None]
        return r.infer({k: v for k, v in feeds.items() if k in names})

    return f


so = ort.SessionOptions()
so.intra_op_num_threads = 2
s = ort.InferenceSession("build/minilm/model_optimized.onnx", so, providers=["CPUExecutionProvider"])
names = [i.name for i in s.get_inputs()]


def ortf(x):
    feeds = {"input_ids": x[None], "attention_mask": np.ones_like(x)[None], "token_type_ids": np.zeros_like(x)[None]}
    return s.run(None, {k: v for k, v in feeds.items() if k in names})


fs = {
    "ov bf16 padded 2t": ovrun("build/minilm/model.onnx", 2),
    "ov f32 padded 2t": ovrun("build/minilm/model.onnx", 2, prec="f32"),
    "ov bf16 latency": ovrun("build/minilm/model.onnx", 2, extra={"PERFORMANCE_HINT": "LATENCY"}),
    "ov bf16 unfused 2t": ovrun("build/minilm/model.onnx", 2, extra={"SNIPPETS_MODE": "DISABLE"}),
    "ort fp32 opt 2t": ortf,
}
for f in fs.values():
    for x in ids:
        f(x)
res = {k: [] for k in fs}
for _ in range(3):
    for k, f in fs.items():
        for x in ids:
            t0 = time.perf_counter()
            f(x)
            res[k].append(time.perf_counter() - t0)
for k, v in res.items():
    print(f"{k:20s} p50 {1000 * statistics.median(v):.2f} ms  p90 {1000 * sorted(v)[int(0.9 * len(v))]:.2f}")
