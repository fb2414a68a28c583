"""ONNX Runtime (CPU) against PyTorch on real and random padded batches; the figures go into config.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer
from torch import nn

from bundle.packing import PACKED_OUTPUT_NAMES, pack, pool
from models import Encoder
from models.attention import MultiHeadAttention

from .onnx_graph import GraphModule, output_names

PARITY_LIMIT = 1e-4  # fp32
BATCH_SIZES = (1, 3, 8)
LONG = 512  # past this length, parity runs one sequence: attention holds h x T x T scores per layer
SAMPLE_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Attention weights show which tokens a Transformer reads together.",
    "Zürich, São Paulo and 東京 are cities; naïve café façade.",
    "short",
    "A considerably longer sentence, with punctuation; numbers like 3.14159 and 2026; and a few rare words "
    "such as sesquipedalian, defenestration and floccinaucinihilipilification.",
)


class ParityError(RuntimeError):
    pass


@dataclass(frozen=True)
class Case:
    name: str
    input_ids: np.ndarray  # (B, T) int64
    attention_mask: np.ndarray  # (B, T) int64


def _padded(rows: list[list[int]], pad_id: int) -> Case:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return Case(f"real b{len(rows)} t{width}", ids, mask)


def parity_cases(
    vocab_size: int, max_length: int, pad_id: int, tokenizer: Tokenizer | None, seed: int = 0
) -> list[Case]:
    """Random batches at every (batch, sequence) of BATCH_SIZES x (1, 7, 128, max); in batches of more than
    one, later rows are shorter, so padding is exercised. Plus the sample texts when there is a tokenizer."""
    rng = np.random.default_rng(seed)
    cases = []
    for t in sorted({1, 7, min(128, max_length), max_length}):
        for b in BATCH_SIZES if t <= LONG else (1,):
            ids = rng.integers(0, vocab_size, size=(b, t), dtype=np.int64)
            mask = np.ones((b, t), dtype=np.int64)
            for row in range(1, b):
                length = max(1, t - (row * t) // b)
                mask[row, length:] = 0
                ids[row, length:] = pad_id
            cases.append(Case(f"random b{b} t{t}", ids, mask))
    if tokenizer is not None:
        rows = [e.ids[:max_length] for e in tokenizer.encode_batch(list(SAMPLE_TEXTS))]
        cases.append(_padded(rows, pad_id))
    return cases


def _session(graph: Path) -> ort.InferenceSession:
    """Without ONNX Runtime's buffer-reuse plan, which keeps long inputs' attention scores alive past their use
    (see the service's runtime); parity does not need its speed."""
    options = ort.SessionOptions()
    options.enable_mem_reuse = False
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def _within_limit(graph: Path, worst: dict[str, float], limit: float) -> dict[str, float]:
    over = {k: v for k, v in worst.items() if v > limit}
    if over:
        raise ParityError(f"{graph.name}: ONNX Runtime differs from PyTorch by {over} (limit {limit})")
    return worst


class Reference:
    """PyTorch's outputs for the parity cases. Those without attentions are computed once per case and
    query-block setting and kept: an embedding bundle checks four graphs against them (padded, packed, optimized,
    fp16); recomputing them per graph made MiniLM's export 38.8 s instead of 33. Outputs with attentions are not
    kept: at 512 tokens one case's are 600 MB."""

    def __init__(self, model: nn.Module, forward: Callable[[Case, bool], list[np.ndarray]]) -> None:
        self.model = model
        self._forward = forward
        self._kept: dict[tuple[int, tuple[int, ...]], tuple[Case, list[np.ndarray]]] = {}

    def outputs(self, case: Case, with_attentions: bool) -> list[np.ndarray]:
        self.model.eval()  # the exporter may leave the module in training mode
        if with_attentions:
            return self._forward(case, True)
        blocks = tuple(m.query_chunks for m in self.model.modules() if isinstance(m, MultiHeadAttention))
        key = (id(case), blocks)  # the case itself is kept with its outputs, so its id stays its own
        if key not in self._kept:
            outputs = self._forward(case, False)
            for array in outputs:
                array.setflags(write=False)  # shared by every check that reads it
            self._kept[key] = (case, outputs)
        return self._kept[key][1]


def encoder_reference(encoder: Encoder) -> Reference:
    modules = {flag: GraphModule(encoder, flag) for flag in (False, True)}

    def forward(case: Case, with_attentions: bool) -> list[np.ndarray]:
        with torch.no_grad():
            out = modules[with_attentions](torch.from_numpy(case.input_ids), torch.from_numpy(case.attention_mask))
        return [t.numpy() for t in out]

    return Reference(encoder, forward)


def check_graph(
    reference: Reference, graph: Path, with_attentions: bool, cases: list[Case], limit: float = PARITY_LIMIT
) -> dict[str, float]:
    """Largest absolute difference per output over all cases; raises ParityError above ``limit``.

    Only real (unpadded) token positions count: the service never returns padded rows, whose values are
    arbitrary (both runtimes agree there only to ~1e-4 on MiniLM's large outlier dimensions).
    """
    session = _session(graph)
    names = output_names(with_attentions)
    worst = dict.fromkeys(names, 0.0)
    for case in cases:
        if with_attentions and case.input_ids.shape[1] > LONG:
            continue  # every layer's and head's T x T probabilities: the service never returns them this long
        got = session.run(names, {"input_ids": case.input_ids, "attention_mask": case.attention_mask})
        want = reference.outputs(case, with_attentions)
        real = case.attention_mask.astype(bool)  # (B, T)
        for name, g, w in zip(names, got, want, strict=True):
            diff = np.abs(g - w)
            if name == "last_hidden_state":
                diff = diff[real]  # (n_real, d_model)
            elif name == "attentions":
                diff = diff.transpose(0, 3, 1, 2, 4)[real]  # (B, L, h, T_q, T_k) -> (n_real, L, h, T_k)
            worst[name] = max(worst[name], float(diff.max()))
    return _within_limit(graph, worst, limit)


def check_packed_graph(
    reference: Reference, graph: Path, cases: list[Case], limit: float = PARITY_LIMIT
) -> dict[str, float]:
    """The packed graph on each case's real tokens against PyTorch's padded forward: hidden states, and the
    pooled vector the service computes from them."""
    session = _session(graph)
    pooling = reference.model.config.pooling
    worst = {"last_hidden_state": 0.0, "pooled": 0.0}
    for case in cases:
        real = case.attention_mask.astype(bool)  # (B, T)
        inputs, offsets = pack([row[keep] for row, keep in zip(case.input_ids, real, strict=True)])
        (hidden,) = session.run(list(PACKED_OUTPUT_NAMES), inputs)  # (n_real, d_model)
        want_hidden, want_pooled = reference.outputs(case, False)
        worst["last_hidden_state"] = max(worst["last_hidden_state"], float(np.abs(hidden - want_hidden[real]).max()))
        pooled = pool(hidden, offsets, pooling)
        worst["pooled"] = max(worst["pooled"], float(np.abs(pooled - want_pooled).max()))
    return _within_limit(graph, worst, limit)
