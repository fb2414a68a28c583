"""Graphs side by side in raw OpenVINO (no service code): sentences/s on the corpus's sentences in batches
grouped by length, the graphs interleaved round by round so that a noisy host hits all of them alike, and the
runtime graph's layer types (does attention run as one fused node, and which). Run from the repository root:

    python docs/measurements/2026-11-26-sdpa/compare.py PRECISION BUNDLE GRAPH [GRAPH ...]

PRECISION: f32 or bf16; GRAPH: a path (.onnx or .xml). Two threads, one stream, as the service's ceiling."""

import collections
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

sys.path.insert(0, ".")
from loadtest.checks import load_corpus

precision, bundle, graphs = sys.argv[1], Path(sys.argv[2]), [Path(g) for g in sys.argv[3:]]
tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
tokenizer.no_padding()
tokenizer.enable_truncation(256)
sequences = sorted((e.ids for e in tokenizer.encode_batch(load_corpus(paragraphs=False))), key=len)


def batches(size: int) -> list[dict[str, np.ndarray]]:
    out = []
    for i in range(0, len(sequences), size):
        chunk = sequences[i:i + size]
        ids = np.zeros((len(chunk), max(map(len, chunk))), np.int64)
        mask = np.zeros_like(ids)
        for j, s in enumerate(chunk):
            ids[j, :len(s)], mask[j, :len(s)] = s, 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return [out[i] for i in np.random.default_rng(0).permutation(len(out))]


core = ov.Core()
compiled = {}
for g in graphs:
    c = core.compile_model(core.read_model(str(g)), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                             "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1})
    layers = collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in c.get_runtime_model().get_ops())
    print(g, "runs", c.get_property("INFERENCE_PRECISION_HINT"), dict(layers.most_common(10)), flush=True)
    compiled[g] = c
for size in (1, 8, 32):
    feeds = batches(size)
    requests = {}
    for g, c in compiled.items():
        requests[g] = c.create_infer_request()
        names = {p.get_any_name() for p in c.inputs}
        for f in feeds:  # every shape once: OpenVINO prepares kernels per input shape
            requests[g].infer({k: v for k, v in f.items() if k in names} | (
                {"token_type_ids": np.zeros_like(f["input_ids"])} if "token_type_ids" in names else {}))
    rates = {g: [] for g in compiled}
    for _ in range(3):
        for g, c in compiled.items():
            names = {p.get_any_name() for p in c.inputs}
            started, n = time.perf_counter(), 0
            for f in feeds:
                requests[g].infer({k: v for k, v in f.items() if k in names} | (
                    {"token_type_ids": np.zeros_like(f["input_ids"])} if "token_type_ids" in names else {}))
                n += len(f["input_ids"])
            rates[g].append(n / (time.perf_counter() - started))
    shown = [f"{g.name} {np.median(r):6.1f} seq/s (rounds {', '.join(f'{x:.0f}' for x in r)})"
             for g, r in rates.items()]
    print(f"batch {size:2d}: " + "; ".join(shown), flush=True)
