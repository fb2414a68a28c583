"""Raw OpenVINO on the bundle's default graph, configs side by side (diagnostic for the lent machine)."""
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

sys.path.insert(0, ".")
from loadtest.checks import load_corpus

b, budget, prec = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
tok = Tokenizer.from_file(str(b / "tokenizer.json"))
tok.no_padding()
tok.enable_truncation(256)
seqs = sorted((e.ids for e in tok.encode_batch(load_corpus(paragraphs=False))), key=len)
print("tokens per sentence: mean", np.mean([len(s) for s in seqs]), "median", np.median([len(s) for s in seqs]))


def batches(bs, step):
    out = []
    for i in range(0, len(seqs), bs):
        chunk = seqs[i:i + bs]
        w = max(map(len, chunk))
        w = -(-w // step) * step
        ids = np.zeros((len(chunk), w), np.int64)
        m = np.zeros_like(ids)
        for j, s in enumerate(chunk):
            ids[j, :len(s)] = s
            m[j, :len(s)] = 1
        out.append({"input_ids": ids, "attention_mask": m})
    return [out[i] for i in np.random.default_rng(0).permutation(len(out))]


core = ov.Core()


def bench(name, cfg, bs, step, graph="model.onnx"):
    t0 = time.perf_counter()
    c = core.compile_model(core.read_model(str(b / graph)), "CPU", {"INFERENCE_PRECISION_HINT": prec, **cfg})
    r = c.create_infer_request()
    bb = batches(bs, step)
    t1 = time.perf_counter()
    for f in bb:
        r.infer(f)
    t2 = time.perf_counter()
    n, t = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t < budget:
        for f in bb:
            r.infer(f)
            n += f["input_ids"].shape[0]
    print(f"{name:20s} batch {bs:3d} step {step:2d} threads {c.get_property('INFERENCE_NUM_THREADS')}: "
          f"compile {t1 - t0:4.1f} s, first pass {t2 - t1:4.1f} s, then {n / (time.perf_counter() - t):7.1f} seq/s",
          flush=True)


ours = {"INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1}
for bs in (8, 32):
    for step in (16, 8, 1):
        bench("ours", ours, bs, step)
    bench("latency hint", {"PERFORMANCE_HINT": "LATENCY"}, bs, 16)
