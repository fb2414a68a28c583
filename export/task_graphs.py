"""The graphs of a task bundle (classify, sparse) and their parity: the encoder and its head in one graph, with
token types as an input where the family has them (sentence pairs: BERT's cross-encoders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bundle.task import LOGITS, SPARSE_OUTPUTS
from models.heads import TaskModel

from .onnx_graph import ATTENTION_OUTPUT, INPUT_NAMES, _additive_masks, _dynamo_export, _quiet_exporter
from .parity import LONG, PARITY_LIMIT, Case, Reference, _session, _within_limit

TYPE_INPUT = "token_type_ids"


def task_input_names(model: TaskModel) -> list[str]:
    """Token types only where the embedding has more than one (RoBERTa-family rerankers have one)."""
    return [*INPUT_NAMES, *([TYPE_INPUT] if model.encoder.config.type_vocab_size > 1 else [])]


def task_output_names(model: TaskModel, with_attentions: bool) -> list[str]:
    outputs = list(SPARSE_OUTPUTS) if model.task.kind == "sparse" else [LOGITS]
    return [*outputs, *([ATTENTION_OUTPUT] if with_attentions else [])]


class TaskGraphModule(nn.Module):
    """Plain tensors for export. Sparse: only the nonzero entries leave the graph (NonZero + a gather), never the
    (B, vocab) matrix: SPLADE vectors are ~1-5% nonzero."""

    def __init__(self, model: TaskModel, with_attentions: bool, types: bool) -> None:
        super().__init__()
        self.model, self.with_attentions, self.types = model, with_attentions, types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        scores, attentions = self.model(input_ids, attention_mask, token_type_ids if self.types else None,
                                        output_attentions=self.with_attentions)
        if self.model.task.kind == "sparse":
            indices = torch.nonzero(scores)  # (N, 2): row, vocabulary id, in row-major order
            outputs: tuple[torch.Tensor, ...] = (indices, scores[indices[:, 0], indices[:, 1]])
        else:
            outputs = (scores,)
        if self.with_attentions:
            assert attentions is not None
            outputs = (*outputs, torch.stack(attentions, dim=1))  # (B, n_layers, h, T, T)
        return outputs


def _sample_inputs(types: bool) -> tuple[torch.Tensor, ...]:
    """Two sequences, the second padded; token types 0 then 1, so the exporter traces a pair."""
    ids = torch.full((2, 8), 5, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    type_ids = torch.zeros_like(ids)
    type_ids[:, 4:] = 1
    return (ids, mask, type_ids) if types else (ids, mask)


def export_task_graph(model: TaskModel, path: Path, with_attentions: bool, max_length: int) -> None:
    names = task_input_names(model)
    types = TYPE_INPUT in names
    batch = torch.export.Dim("batch", max=65536)
    sequence = torch.export.Dim("sequence", max=max(max_length, 9))
    _dynamo_export(TaskGraphModule(model, with_attentions, types), model.encoder, _sample_inputs(types), path,
                   (names, task_output_names(model, with_attentions)),
                   {name: {0: batch, 1: sequence} for name in names})
    model.eval()


def export_fusable_task_graph(model: TaskModel, path: Path) -> None:
    """As export_fusable_graph (see there): the TorchScript exporter and additive masks, for the optimizer."""
    names = task_input_names(model)
    types = TYPE_INPUT in names
    module = TaskGraphModule(model, False, types).eval()
    outputs = task_output_names(model, False)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in outputs})
    with torch.no_grad(), _quiet_exporter(), _additive_masks(model.encoder):
        torch.onnx.export(module, _sample_inputs(types), str(path), input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    model.eval()


def type_ids_for(case: Case) -> np.ndarray:
    """A pair's token types for a parity case: the second half of each row's real tokens is type 1."""
    lengths = case.attention_mask.sum(axis=1)
    positions = np.arange(case.input_ids.shape[1])[None, :]
    return ((positions >= (lengths[:, None] + 1) // 2) & case.attention_mask.astype(bool)).astype(np.int64)


def _dense(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float32)
    out[indices[:, 0], indices[:, 1]] = values
    return out


def task_reference(model: TaskModel) -> Reference:
    names = task_input_names(model)
    types = TYPE_INPUT in names
    modules = {flag: TaskGraphModule(model, flag, types) for flag in (False, True)}

    def forward(case: Case, with_attentions: bool) -> list[np.ndarray]:
        feeds = _feeds(case, types)
        with torch.no_grad():
            return [w.numpy() for w in modules[with_attentions](*(torch.from_numpy(feeds[n]) for n in names))]

    return Reference(model, forward)


def _feeds(case: Case, types: bool) -> dict[str, np.ndarray]:
    feeds = {"input_ids": case.input_ids, "attention_mask": case.attention_mask}
    if types:
        feeds[TYPE_INPUT] = type_ids_for(case)
    return feeds


def check_task_graph(reference: Reference, graph: Path, with_attentions: bool, cases: list[Case],
                     limit: float = PARITY_LIMIT) -> dict[str, float]:
    """Largest absolute difference against PyTorch per output (sparse: as the dense (B, vocab) matrix, so a
    missing or extra entry counts its whole value); raises ParityError above ``limit``."""
    model = reference.model
    session = _session(graph)
    types = TYPE_INPUT in task_input_names(model)
    worst: dict[str, float] = {}
    for case in cases:
        if with_attentions and case.input_ids.shape[1] > LONG:
            continue
        got = session.run(None, _feeds(case, types))
        want = reference.outputs(case, with_attentions)
        diffs = {}
        if model.task.kind == "sparse":
            shape = (case.input_ids.shape[0], model.encoder.config.vocab_size)
            diffs["sparse"] = np.abs(_dense(got[0], got[1], shape) - _dense(want[0], want[1], shape)).max()
        else:
            diffs[LOGITS] = np.abs(got[0] - want[0]).max()
        if with_attentions:
            real = case.attention_mask.astype(bool)
            diffs[ATTENTION_OUTPUT] = np.abs(got[-1] - want[-1]).transpose(0, 3, 1, 2, 4)[real].max()
        for name, diff in diffs.items():
            worst[name] = max(worst.get(name, 0.0), float(diff))
    return _within_limit(graph, worst, limit)
