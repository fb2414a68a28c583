"""Every limit a request must meet before anything is queued; each failure names the field and the limit."""

from __future__ import annotations

import re

import numpy as np

from bundle import Bundle

from .errors import ApiError
from .schemas import EncodeRequest
from .settings import Settings

# JSON may escape a lone UTF-16 surrogate ("\ud800"); Python keeps it in the str, but it is no character:
# the tokenizer (and UTF-8) cannot take it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_inputs(kind: str, count: int, texts: list[str] | None, settings: Settings) -> None:
    """Counts and characters: cheap checks before tokenizing, so a huge string costs nothing."""
    if count > settings.max_inputs_per_request:
        raise ApiError(422, f"{kind}: {count} inputs; at most {settings.max_inputs_per_request} per request "
                            "(max_inputs_per_request)", kind)
    for i, text in enumerate(texts or []):
        if len(text) > settings.max_chars_per_text:
            raise ApiError(422, f"{kind}[{i}]: {len(text)} characters; at most {settings.max_chars_per_text} "
                                "(max_chars_per_text)", f"{kind}[{i}]")
        if not text.isascii() and (bad := _SURROGATE.search(text)):
            raise ApiError(422, f"{kind}[{i}]: a lone surrogate (U+{ord(bad.group()):04X}) at character {bad.start()} "
                                "is not valid Unicode text", f"{kind}[{i}]")


def check_token_lists(kind: str, lists: list[list[int]], bundle: Bundle, truncate: bool | None) -> list[np.ndarray]:
    """Token ids used as given: non-empty, inside the vocabulary, within the maximum unless truncated
    (``truncate`` None: the route cannot truncate)."""
    out = []
    for i, arr in enumerate(token_arrays(kind, lists, bundle)):
        if len(arr) > bundle.max_length:
            if not truncate:
                raise ApiError(422, too_long_message(kind, i, len(arr), bundle.max_length, truncate is not None),
                               f"{kind}[{i}]")
            arr = arr[: bundle.max_length]
        out.append(arr)
    return out


def token_arrays(kind: str, lists: list[list[int]], bundle: Bundle) -> list[np.ndarray]:
    """Token id lists as int64 arrays, each non-empty and inside the vocabulary, whatever their length."""
    out = []
    for i, ids in enumerate(lists):
        if not ids:
            raise ApiError(422, f"{kind}[{i}]: an input needs at least one token", f"{kind}[{i}]")
        try:
            arr = np.asarray(ids, dtype=np.int64)
        except OverflowError:  # JSON integers are unbounded; int64 is not
            arr = np.asarray([v if -(2**63) <= v < 2**63 else -1 for v in ids], dtype=np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= bundle.vocab_size))
        if bad.size:
            j = int(bad[0])
            shown = str(ids[j]) if len(str(ids[j])) <= 24 else f"{str(ids[j])[:12]}... ({len(str(ids[j]))} digits)"
            raise ApiError(422, f"{kind}[{i}][{j}]: token id {shown} is outside the vocabulary "
                                f"[0, {bundle.vocab_size})", f"{kind}[{i}][{j}]")
        out.append(arr)
    return out


def check_dimensions(dimensions: int | None, bundle: Bundle) -> int | None:
    """None for the model's own size; a shorter size only when the bundle lists it (a model trained with a
    Matryoshka loss keeps its meaning in the first values; any other loses it silently)."""
    if dimensions is None or dimensions == bundle.dimensions:
        return None
    allowed = bundle.matryoshka_dimensions
    if dimensions in allowed:
        return dimensions
    if not allowed:
        why = ("this model was not trained for shorter vectors (its bundle lists no Matryoshka dimensions; "
               "export it with --matryoshka-dims if it was)")
    else:
        why = f"this model was trained for {', '.join(map(str, allowed))} besides its own size"
    raise ApiError(422, f"dimensions: {dimensions} is not allowed: the model gives {bundle.dimensions}; {why}",
                   "dimensions")


def too_long_message(kind: str, index: int, length: int, limit: int, can_truncate: bool) -> str:
    """The hint is true for the route it is given on: only /encode has `truncate`."""
    hint = "set truncate to true to cut it" if can_truncate else "shorten the input"
    return f"{kind}[{index}]: {length} tokens; the model's maximum is {limit} ({hint})"


def check_total_tokens(kind: str, sequences: list[np.ndarray], settings: Settings) -> int:
    total = sum(len(s) for s in sequences)
    if total > settings.max_tokens_per_request:
        raise ApiError(422, f"{kind}: {total} tokens in this request; at most {settings.max_tokens_per_request} "
                            "(max_tokens_per_request)", kind)
    return total


def _check_indices(name: str, values: list[int], size: int, unit: str) -> list[int]:
    """Each index once, at most ``size`` of them: a longer list could only repeat, and cost per entry."""
    if len(values) > size:
        raise ApiError(422, f"{name}: {len(values)} entries; this model has {size} {unit}s", name)
    out: list[int] = []
    for i, v in enumerate(values):
        if not -size <= v < size:
            raise ApiError(422, f"{name}[{i}]: {v} is not an index in [-{size}, {size})", f"{name}[{i}]")
        if v % size in out:
            raise ApiError(422, f"{name}[{i}]: {unit} {v % size} is listed twice", f"{name}[{i}]")
        out.append(v % size)
    return out


def attention_selection(layers: list[int] | None, heads: list[int] | str | None,
                        bundle: Bundle) -> tuple[list[int], list[int] | None]:
    """Layer indices and head indices (None: the mean of all heads), negatives counted from the end."""
    chosen_layers = (list(range(bundle.n_layers)) if layers is None
                     else _check_indices("attention_layers", layers, bundle.n_layers, "layer"))
    if heads == "mean":
        return chosen_layers, None
    if heads == []:
        raise ApiError(422, "attention_heads: give at least one head index, or \"mean\"", "attention_heads")
    chosen_heads = (list(range(bundle.n_heads)) if heads is None
                    else _check_indices("attention_heads", heads, bundle.n_heads, "head"))  # type: ignore[arg-type]
    return chosen_layers, chosen_heads


def check_attention_values(sequences: list[np.ndarray], n_layers: int, n_heads: int, settings: Settings) -> int:
    """The attention values the answer will hold, once they are known to be within max_attention_values."""
    values = sum(len(s) ** 2 for s in sequences) * n_layers * n_heads
    if values > settings.max_attention_values:
        raise ApiError(422, f"return_attentions: this response would hold {values} attention values; at most "
                            f"{settings.max_attention_values} (max_attention_values). Ask for fewer "
                            "attention_layers or attention_heads (or \"mean\"), or shorter inputs",
                       "return_attentions")
    return values


def check_sparse_options(body: EncodeRequest, sparse: bool, model: str) -> None:
    """A sparse model's /encode answers sparse vectors only; the dense options are refused by name (and
    sparse_top_k on a dense model), never silently ignored."""
    if not sparse:
        if body.sparse_top_k is not None:
            raise ApiError(422, f"sparse_top_k: {model!r} is an embedding model; its vectors are dense", "sparse_top_k")
        return
    asked = {"pooling": body.pooling is not None, "normalize": body.normalize is not None,
             "dimensions": body.dimensions is not None, "return_token_embeddings": body.return_token_embeddings,
             "encoding_format": body.encoding_format != "float"}
    for name, given in asked.items():
        if given:
            raise ApiError(422, f"{name}: {model!r} is a sparse model; its /encode answers sparse_embeddings "
                                "(indices and values), without this option", name)
