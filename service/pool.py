"""The pool stage: results -> response parts (pooling, normalization, attention selection, base64)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .runtime import SequenceResult


def pooled_vector(result: SequenceResult, pooling: str, default_pooling: str, normalize: bool,
                  dimensions: int | None = None) -> np.ndarray:
    """``dimensions``: Matryoshka truncation, the first ``dimensions`` values, normalized after the cut."""
    if pooling == default_pooling:
        vector = result.pooled
    elif pooling == "cls":
        vector = result.hidden[0]
    elif pooling == "last":
        vector = result.hidden[-1]
    else:
        vector = result.hidden.mean(axis=0)
    if dimensions is not None:
        vector = vector[:dimensions]
    if normalize:
        # F.normalize's eps: an all-zero vector stays zero
        vector = vector / max(float(np.sqrt(vector @ vector)), 1e-12)  # np.linalg.norm's own checks cost more
    return np.ascontiguousarray(vector, dtype=np.float32)


def selected_attentions(result: SequenceResult, layers: list[int], heads: list[int] | None) -> np.ndarray:
    """(n_layers, h, n, n) -> (len(layers), len(heads) or 1 for the mean, n, n)."""
    assert result.attentions is not None
    picked = result.attentions[layers]
    picked = picked.mean(axis=1, keepdims=True) if heads is None else picked[:, heads]
    return np.ascontiguousarray(picked, dtype=np.float32)


def keep_attentions(layers: list[int], heads: list[int] | None) -> Callable[[SequenceResult], SequenceResult]:
    """A result reducer for the batcher: keeps only the asked-for attention (a copy), so the batch's output of
    every layer and head is freed as soon as its batch has been delivered."""

    def finish(result: SequenceResult) -> SequenceResult:
        return replace(result, attentions=selected_attentions(result, layers, heads))

    return finish


def b64(array: np.ndarray) -> str:
    """Little-endian float32, row-major."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def sparse_vector(result: SequenceResult, top_k: int | None) -> dict[str, list]:
    """A SPLADE vector as vocabulary ids ascending and their weights; ``top_k``: only the k largest weights
    (ties: the lower id), still by id."""
    assert result.sparse is not None
    ids, weights = result.sparse
    if top_k is not None and len(ids) > top_k:
        keep = np.sort(np.argsort(-weights, kind="stable")[:top_k])
        ids, weights = ids[keep], weights[keep]
    return {"indices": ids.tolist(), "values": weights.astype(np.float32).tolist()}
