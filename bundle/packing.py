"""Inputs of the packed graph: a batch's tokens one after another, no padding (the CPU's batched graph).

On a CPU, padding costs as much as real tokens. The packed graph runs embeddings, projections and the
feed-forward blocks on the real tokens only; attention alone gathers them into the padded (B, S) layout.
"""

from __future__ import annotations

import numpy as np

PACKED_INPUT_NAMES = ("input_ids", "positions", "slots", "keep", "attention_mask")
PACKED_OUTPUT_NAMES = ("last_hidden_state",)


def pack(sequences: list[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The graph's inputs, and offsets (B + 1,): sequence i's rows in the (T, d_model) output are
    offsets[i]:offsets[i + 1]. Every sequence has at least one token."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))  # (B,)
    if not len(lengths) or lengths.min() < 1:
        raise ValueError("a packed batch needs at least one sequence, each with at least one token")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    column = np.arange(int(lengths.max()), dtype=np.int64)[None, :]  # (1, S)
    mask = column < lengths[:, None]  # (B, S)
    inputs = {
        "input_ids": np.concatenate(sequences).astype(np.int64, copy=False),  # (T,)
        "positions": np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths),  # (T,)
        "slots": np.where(mask, offsets[:-1, None] + column, 0),  # (B, S); padding slots name token 0
        "keep": np.flatnonzero(mask),  # (T,) index in B x S, row-major
        "attention_mask": mask.astype(np.int64),  # (B, S)
    }
    return inputs, offsets


def pool(hidden: np.ndarray, offsets: np.ndarray, how: str) -> np.ndarray:
    """(T, d_model) packed rows -> (B, d_model): the mean of each sequence's rows, its first or its last row."""
    starts = offsets[:-1]
    if how == "cls":
        return hidden[starts]
    if how == "last":
        return hidden[offsets[1:] - 1]
    return np.add.reduceat(hidden, starts, axis=0) / np.diff(offsets)[:, None].astype(hidden.dtype)
