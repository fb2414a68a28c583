"""Why the packed graph keeps its Where-and-Mul masks: bf16 fidelity of packed-graph variants of MiniLM, exported
here, OpenVINO bf16 on one thread with attention fused (snippets) or not, against ONNX Runtime fp32 on the bundle's
own packed graph. The pooled vectors of the 900 corpus sentences in batches of 24 in random order; worst and median
cosine. Variants: "bundle" (build/minilm as exported), "additive" (additive masks), "additive+gather" (additive
masks, index_select gathers), "gather" (index_select gathers, masks as in the bundle).

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-26-amx-unfused/packed_fidelity.py /tmp/variants
"""

import contextlib
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
import torch

from bundle import load_bundle
from bundle.packing import pack, pool
from export.onnx_graph import _additive_masks, export_packed_graph
from models.checkpoint import load_hf_checkpoint, minilm_folder
from models.encoder import EncoderLayer
from service.tokenize import TextTokenizer

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
original = EncoderLayer._self_attention


def gathered(self, x, mask, need_weights, packing, terms):
    """The packed path with index_select (ONNX Gather) instead of indexing by the (B, S) table (GatherND)."""
    if packing is None:
        return original(self, x, mask, need_weights, packing, terms)
    a = self.attention
    b, s = packing.mask.shape
    slots = packing.slots.reshape(b * s)
    q, k, v = (proj(x).index_select(0, slots).reshape(b, s, a.d_model) for proj in (a.w_q, a.w_k, a.w_v))
    context, probs = a.attend(q, k, v, packing.mask, need_weights, terms)
    return a.w_o(context.reshape(b * s, a.d_model).index_select(0, packing.keep)), probs


encoder = load_hf_checkpoint(minilm_folder()).model
variants = {"bundle": Path("build/minilm/model_packed.onnx")}
for name, additive, gather in (("additive", True, False), ("additive+gather", True, True), ("gather", False, True)):
    EncoderLayer._self_attention = gathered if gather else original  # type: ignore[method-assign]
    with torch.no_grad(), (_additive_masks(encoder) if additive else contextlib.nullcontext()):
        export_packed_graph(encoder, out / f"{name}.onnx", 256)
    variants[name] = out / f"{name}.onnx"
EncoderLayer._self_attention = original  # type: ignore[method-assign]

bundle = load_bundle(Path("build/minilm"))
texts = Path("loadtest/corpus.txt").read_text().splitlines()
ids = [np.asarray(e.ids, dtype=np.int64)
       for e in TextTokenizer(Path("build/minilm/tokenizer.json"), bundle.max_length).encode(texts, True)]
order = np.random.default_rng(0).permutation(len(ids))
batches = [[ids[i] for i in order[k: k + 24]] for k in range(0, len(ids), 24)]


def vectors(run) -> np.ndarray:
    out = []
    for batch in batches:
        feeds, offsets = pack(batch)
        out.append(pool(run(feeds), offsets, "mean"))
    return np.concatenate(out)


reference = ort.InferenceSession(str(variants["bundle"]), providers=["CPUExecutionProvider"])
want = vectors(lambda feeds: reference.run(None, feeds)[0])
core = ov.Core()
for name, path in variants.items():
    for fused in (True, False):
        config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1}
        if not fused:
            config["SNIPPETS_MODE"] = "DISABLE"
        request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        got = vectors(lambda feeds, r=request: np.asarray(r.infer(feeds)[0]).copy())
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        print(f"{name:16s} attention {'fused  ' if fused else 'unfused'}  worst cos {cos.min():.7f}  "
              f"median {np.median(cos):.7f}", flush=True)
