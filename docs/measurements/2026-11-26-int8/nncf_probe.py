"""int8 the careful way, on OpenVINO (issue #18, item 5): NNCF's post-training quantization of the bundle's
default graph with calibration data, SmoothQuant-style smoothing (NNCF's default for transformer models) or
without it, and with sensitive layers kept in f32, each variant's worst and median cosine of the pooled vectors
over the 900 corpus sentences against OpenVINO f32 on the same graph, and its sentences/s at batch 32 grouped by
length on 2 threads, every variant interleaved round by round with f32, in one run.

    pip install nncf   # not one of attnserve's dependencies: int8 is not served
    python docs/measurements/2026-11-26-int8/nncf_probe.py build/minilm

Calibration: 300 sentences cut from the shipped paragraphs (loadtest/paragraphs.txt), never the corpus
sentences the fidelity is measured on. Compiled with INFERENCE_PRECISION_HINT f32 for what is not int8 (on an
AMX CPU OpenVINO would otherwise run the rest in bf16)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from loadtest.checks import HERE, load_corpus

bundle = Path(sys.argv[1])
tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
tokenizer.no_padding()
tokenizer.enable_truncation(128)


def feeds(texts: list[str], size: int) -> list[dict[str, np.ndarray]]:
    encoded = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)
    out = []
    for i in range(0, len(encoded), size):
        chunk = encoded[i:i + size]
        ids = np.zeros((len(chunk), max(map(len, chunk))), np.int64)
        mask = np.zeros_like(ids)
        for j, s in enumerate(chunk):
            ids[j, :len(s)], mask[j, :len(s)] = s, 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


paragraph_sentences = [s for p in (HERE / "paragraphs.txt").read_text().splitlines()
                       for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) > 3]
calibration = feeds(paragraph_sentences[:300], 1)
test = feeds(load_corpus(paragraphs=False), 32)
print(f"calibration: {len(calibration)} sentences from the paragraphs; test: {sum(len(f['input_ids']) for f in test)} "
      "corpus sentences", flush=True)

core = ov.Core()
fp32 = core.read_model(str(bundle / "model.onnx"))
matmuls = [op for op in fp32.get_ops() if op.get_type_name() == "MatMul"]
# by what they multiply: the FFN's output projection reads the (.., 4 d) GELU output with a constant weight;
# the attention's two products multiply activations by activations (scores, and probabilities by values)
weights = [op for op in matmuls if op.input_value(1).get_node().get_type_name() in ("Constant", "Convert")]
ffn_out = [op.get_friendly_name() for op in weights if op.get_input_partial_shape(0)[-1].get_length()
           == 4 * op.get_output_partial_shape(0)[-1].get_length()]
attention = [op.get_friendly_name() for op in matmuls if op not in weights]
print(f"{len(matmuls)} MatMuls: {len(weights)} with weights, of which {len(ffn_out)} FFN outputs; "
      f"{len(attention)} attention products", flush=True)


def quantize(smooth: float | None, ignored: list[str]) -> ov.Model:
    advanced = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(
        matmul=smooth if smooth is not None else -1))
    return nncf.quantize(fp32, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(calibration), advanced_parameters=advanced,
                         ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None)


variants: dict[str, ov.Model] = {"f32": fp32}
for name, smooth, ignored in (("int8, no smoothing", None, []), ("int8, SmoothQuant alpha 0.95", 0.95, []),
                              ("int8, SmoothQuant alpha 0.5", 0.5, []),
                              ("int8, SmoothQuant 0.95, attention products f32", 0.95, attention),
                              ("int8, SmoothQuant 0.95, attention products and FFN outputs f32", 0.95,
                               attention + ffn_out)):
    started = time.perf_counter()
    variants[name] = quantize(smooth, ignored)
    print(f"quantized {name!r} in {time.perf_counter() - started:.0f} s", flush=True)

compiled = {name: core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2,
                                                  "NUM_STREAMS": 1}) for name, m in variants.items()}
requests = {name: c.create_infer_request() for name, c in compiled.items()}
pooled = {}
for name, r in requests.items():
    port = compiled[name].output("pooled")
    pooled[name] = np.concatenate([r.infer(f)[port].copy() for f in test])
rates: dict[str, list[float]] = {name: [] for name in requests}
for _ in range(3):
    for name, r in requests.items():
        started = time.perf_counter()
        for f in test:
            r.infer(f)
        rates[name].append(sum(len(f["input_ids"]) for f in test) / (time.perf_counter() - started))
want = pooled["f32"].astype(np.float64)
print("\n| variant | sentences/s (batch 32, median of 3) | vs f32 | worst cos | median cos |")
print("| --- | --- | --- | --- | --- |")
for name in requests:
    got = pooled[name].astype(np.float64)
    cos = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    rate = float(np.median(rates[name]))
    print(f"| {name} | {rate:.0f} | {rate / np.median(rates['f32']):.2f}x | {cos.min():.5f} | {np.median(cos):.6f} |")
