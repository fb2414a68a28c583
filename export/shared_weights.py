"""Store the embedding tables that every graph of a bundle holds identically once, as ONNX external data.

Each ONNX Runtime session copies its graph's initializers, and the service holds four sessions: MiniLM's token
embedding (30522 x 384 floats, 47 MB) was resident four times. Moved into one external-data file, the graphs stay
plain ONNX (ONNX Runtime and onnx read them on their own) and the service loads the table once and hands that
one copy to every session (``SessionOptions.add_initializer``). Only tables that nothing but Gather reads are
moved: kernels such as MatMul repack their weights per session, so a shared original would be a third copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

SHARED_FILE = "shared_weights.bin"
MIN_BYTES = 1 << 20  # smaller tensors are not worth an indirection
ALIGN = 4096  # page-aligned offsets: ONNX Runtime can map them instead of reading


def _gather_only(graph: onnx.GraphProto) -> set[str]:
    """Names of the initializers that are inputs of Gather nodes (as the table, input 0) and of nothing else."""
    readers: dict[str, set[tuple[str, int]]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            readers.setdefault(name, set()).add((node.op_type, position))
    return {name for name, uses in readers.items() if uses == {("Gather", 0)}}


def share_embeddings(paths: list[Path], output: Path) -> dict[str, Any] | None:
    """Rewrite ``paths`` in place so the tables they hold identically live once in ``output / SHARED_FILE``.

    Returns the config.json entry (file and, per tensor, name, dtype, shape, offset, length), or None when the
    graphs share no such table (then nothing is written).
    """
    models = [onnx.load(str(p)) for p in paths]
    arrays: dict[str, np.ndarray] | None = None
    for model in models:
        gather = _gather_only(model.graph)
        here = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
                if t.name in gather and t.data_type == onnx.TensorProto.FLOAT
                and int(np.prod(t.dims)) * 4 >= MIN_BYTES}
        if arrays is None:
            arrays = here
        else:
            arrays = {name: a for name, a in arrays.items()
                      if name in here and here[name].shape == a.shape and np.array_equal(here[name], a)}
    (output / SHARED_FILE).unlink(missing_ok=True)
    if not arrays:
        return None
    tensors = []
    with (output / SHARED_FILE).open("wb") as f:
        for name, array in sorted(arrays.items()):
            f.write(b"\0" * (-f.tell() % ALIGN))
            tensors.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                            "offset": f.tell(), "length": array.nbytes})
            f.write(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    where = {t["name"]: t for t in tensors}
    for path, model in zip(paths, models, strict=True):
        for tensor in model.graph.initializer:
            if tensor.name in where:
                tensor.CopyFrom(numpy_helper.from_array(arrays[tensor.name], tensor.name))  # raw_data form
                external_data_helper.set_external_data(
                    tensor, SHARED_FILE, offset=where[tensor.name]["offset"], length=where[tensor.name]["length"])
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
        onnx.save(model, str(path))
    return {"file": SHARED_FILE, "tensors": tensors}
