"""Inputs of the packed graph: a batch's tokens one after another, no padding (the CPU's batched graph).

On a CPU, padding costs as much as real tokens. The packed graph runs embeddings, projections and the
feed-forward blocks on the real tokens only; attention alone gathers them into the padded (B, S) layout.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PACKED_INPUT_NAMES = ("input_ids", "positions", "slots", "keep", "attention_mask")
PACKED_OUTPUT_NAMES = ("last_hidden_state",)


class Buckets(NamedTuple):
    """Round a packed batch's shape up: rows (B) and width (S) of the attention layout, and total tokens (T), to
    multiples of these. OpenVINO prepares and keeps kernels for every input shape it meets (~0.6 MB each in bf16,
    without end): exact shapes from live traffic are new almost every batch, bucketed ones a bounded few. Rows
    stay exact by default: they cost no memory per shape, and every padding row costs attention its work."""

    rows: int = 1
    width: int = 8
    tokens: int = 32


def pack(sequences: list[np.ndarray], buckets: Buckets | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The graph's inputs, and offsets (B + 1,): sequence i's rows in the (T, d_model) output are
    offsets[i]:offsets[i + 1]. Every sequence has at least one token. With ``buckets``, the rows, width and tokens
    are rounded up: extra rows are all padding; extra tokens (pad id 0, position 0) are in no slot, so no token
    attends to them, and their output rows, after the real ones, copy slot 0's and are dropped."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))  # (B,)
    if not len(lengths) or lengths.min() < 1:
        raise ValueError("a packed batch needs at least one sequence, each with at least one token")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    b, s, t = len(lengths), int(lengths.max()), int(offsets[-1])
    rows, width, tokens = b, s, t
    if buckets is not None:
        rows = -(-b // buckets.rows) * buckets.rows
        width = -(-s // buckets.width) * buckets.width
        tokens = -(-t // buckets.tokens) * buckets.tokens
    lengths_in_rows = np.zeros(rows, dtype=np.int64)
    lengths_in_rows[:b] = lengths
    column = np.arange(width, dtype=np.int64)[None, :]  # (1, S)
    mask = column < lengths_in_rows[:, None]  # (B, S): the padding rows are all False
    starts = np.zeros(rows, dtype=np.int64)
    starts[:b] = offsets[:-1]
    extra = tokens - t
    inputs = {
        "input_ids": np.concatenate([*sequences, np.zeros(extra, dtype=np.int64)]).astype(np.int64, copy=False),
        "positions": np.concatenate([np.arange(t, dtype=np.int64) - np.repeat(offsets[:-1], lengths),
                                     np.zeros(extra, dtype=np.int64)]),  # (T,)
        "slots": np.where(mask, starts[:, None] + column, 0),  # (B, S); padding slots name token 0
        # (T,) index in B x S, row-major; the extra tokens read slot 0 (their rows are dropped)
        "keep": np.concatenate([np.flatnonzero(mask), np.zeros(extra, dtype=np.int64)]),
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
