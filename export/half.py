"""The fp16 graph for CUDA hosts (ATTNSERVE_PRECISION=fp16): the default graph with its weights and arithmetic
in float16, its inputs and outputs left as they are (int64 ids, float32 vectors), so the service feeds and
reads it like the others. Embedding lookups stay float32 and cast after the Gather: the tables stay shared with
the other graphs (shared_weights.bin) and a lookup loses nothing."""

from __future__ import annotations

from pathlib import Path

import onnx

# fp16 against PyTorch fp32, largest absolute difference on any output (vectors of norm ~1 to ~10): MiniLM
# measured 5.8e-3 on the parity cases; its pooled vectors kept cosine >= 0.99999 on 300 real sentences
HALF_PARITY_LIMIT = 5e-2


def half_graph(source: Path, target: Path) -> None:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(source))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, "Gather"])
    _drop_float_casts_of_float_tables(half.graph)
    onnx.save(half, str(target))


def _drop_float_casts_of_float_tables(graph: onnx.GraphProto) -> None:
    """The converter leaves a Cast to float32 on each float32 table it kept for a blocked Gather: a no-op that
    would stop the table being shared (only tables that Gather alone reads are). The Gather reads it directly."""
    tables = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    renamed = {}
    for node in list(graph.node):
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == onnx.TensorProto.FLOAT and node.input[0] in tables:
            renamed[node.output[0]] = node.input[0]
            graph.node.remove(node)
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
