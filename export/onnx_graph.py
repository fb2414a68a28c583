"""torch.onnx.export of an Encoder into the bundle's graph form."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.utils import Extractor
from torch import nn

from bundle.packing import PACKED_INPUT_NAMES, PACKED_OUTPUT_NAMES, pack
from models import Encoder
from models.attention import MultiHeadAttention
from models.encoder import Packing

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("last_hidden_state", "pooled")
ATTENTION_OUTPUT = "attentions"


class GraphModule(nn.Module):
    """Plain-tensor outputs for export; attentions stacked as one (B, n_layers, h, T, T) tensor."""

    def __init__(self, encoder: Encoder, with_attentions: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.with_attentions = with_attentions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.encoder(input_ids, attention_mask, output_attentions=self.with_attentions)
        if self.with_attentions:
            assert out.attentions is not None
            return out.last_hidden_state, out.pooled, torch.stack(out.attentions, dim=1)
        return out.last_hidden_state, out.pooled


class PackedGraphModule(nn.Module):
    """The packed graph: (T,) token ids and positions plus where they sit in (B, S) -> (T, d_model)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, keep: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_packed(input_ids, positions, Packing(slots, keep, attention_mask))


def packed_sample_inputs() -> tuple[torch.Tensor, ...]:
    """Two sequences of different lengths, so the exporter traces the gathers and the masking."""
    inputs, _ = pack([np.full(8, 5, dtype=np.int64), np.full(5, 6, dtype=np.int64)])
    return tuple(torch.from_numpy(inputs[name]) for name in PACKED_INPUT_NAMES)


def output_names(with_attentions: bool) -> list[str]:
    return [*OUTPUT_NAMES, *([ATTENTION_OUTPUT] if with_attentions else [])]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter prints progress, logs about torchvision and warns about its own internals;
    none of it is the user's concern. Errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _sample_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences, the second padded, so the exporter traces the masking."""
    ids = torch.full((2, 8), 5, dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


@contextlib.contextmanager
def _attention_switch(encoder: Encoder, name: str, value: object, default: object) -> Iterator[None]:
    """Set one of MultiHeadAttention's export-only switches on every layer, and back after."""
    modules = [m for m in encoder.modules() if isinstance(m, MultiHeadAttention)]
    for m in modules:
        setattr(m, name, value)
    try:
        yield
    finally:
        for m in modules:
            setattr(m, name, default)


def _additive_masks(encoder: Encoder) -> contextlib.AbstractContextManager[None]:
    return _attention_switch(encoder, "additive_mask", True, False)


LONG_CONTEXT = 2048  # longer bundles compute attention in blocks of queries
QUERY_BLOCK = 1024


def query_chunks_for(max_length: int) -> int:
    """How many blocks of queries the bundle's embedding graphs compute attention in: 1 up to LONG_CONTEXT
    tokens; beyond, blocks of at most QUERY_BLOCK queries at the maximum length (8192: 8 blocks, 1/8 of the
    scores alive at a time). Short bundles keep one block: blocks add operators that cost time on short inputs."""
    return 1 if max_length <= LONG_CONTEXT else -(-max_length // QUERY_BLOCK)


def query_chunks(encoder: Encoder, chunks: int) -> contextlib.AbstractContextManager[None]:
    return _attention_switch(encoder, "query_chunks", chunks, 1)


def export_fusable_graph(encoder: Encoder, path: Path) -> None:
    """The default graph in the form ONNX Runtime's transformer optimizer fuses into Attention operators:
    additive masks, and the TorchScript exporter, whose graph its fusion patterns match (the dynamo
    exporter's does not). Only the optimizer reads this file."""
    module = GraphModule(encoder, False).eval()
    with torch.no_grad(), _quiet_exporter(), _additive_masks(encoder):
        torch.onnx.export(
            module,
            _sample_inputs(),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=output_names(False),
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "last_hidden_state": {0: "batch", 1: "sequence"}, "pooled": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    encoder.eval()


def _dynamo_export(module: nn.Module, encoder: Encoder, inputs: tuple[torch.Tensor, ...], path: Path,
                   names: tuple[list[str], list[str]], dynamic_shapes: dict) -> None:
    """The dynamo exporter (opset 18, weights inside the file) for the bundle's graphs."""
    with torch.no_grad(), _quiet_exporter():
        torch.onnx.export(module.eval(), inputs, str(path), input_names=names[0], output_names=names[1],
                          dynamic_shapes=dynamic_shapes, opset_version=18, dynamo=True, external_data=False,
                          verbose=False)
    # torch.onnx.export has been seen to leave modules in training mode: dropout would break parity.
    encoder.eval()


def export_graph(encoder: Encoder, path: Path, with_attentions: bool, max_length: int) -> None:
    """Write one ONNX graph with dynamic batch and sequence axes (int64 inputs)."""
    batch = torch.export.Dim("batch", max=65536)
    sequence = torch.export.Dim("sequence", max=max(max_length, 9))
    _dynamo_export(GraphModule(encoder, with_attentions), encoder, _sample_inputs(), path,
                   (list(INPUT_NAMES), output_names(with_attentions)),
                   {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}})


def export_packed_graph(encoder: Encoder, path: Path, max_length: int) -> None:
    """Write the packed graph (see bundle/packing.py), with dynamic token, batch and sequence axes."""
    tokens = torch.export.Dim("tokens", max=65536 * max_length)
    batch = torch.export.Dim("batch", max=65536)
    sequence = torch.export.Dim("sequence", max=max(max_length, 9))
    _dynamo_export(PackedGraphModule(encoder), encoder, packed_sample_inputs(), path,
                   (list(PACKED_INPUT_NAMES), list(PACKED_OUTPUT_NAMES)),
                   {"input_ids": {0: tokens}, "positions": {0: tokens}, "slots": {0: batch, 1: sequence},
                    "keep": {0: tokens}, "attention_mask": {0: batch, 1: sequence}})


def without_attentions(source: Path, target: Path) -> None:
    """The graph without attentions, cut from the trace of the one with them: the attentions output and the
    nodes that only stack it are dropped (onnx's Extractor). The dynamo exporter traces the two to the same
    nodes otherwise, so ONNX Runtime's outputs are bitwise those of a graph traced without attentions, and
    an export saves one of its three traces. Only where both compute attention alike (no query blocks)."""
    model = onnx.load(source)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output if o.name != ATTENTION_OUTPUT]
    cut = Extractor(model).extract_model(inputs, outputs)
    cut.producer_name, cut.producer_version = model.producer_name, model.producer_version  # not the Extractor's
    onnx.save(cut, target)
