"""Steps both inference routes share: inputs -> checked token sequences, and serialization."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from ..context import Context
from ..errors import ApiError
from ..limits import check_inputs, check_token_lists, check_total_tokens, too_long_message
from ..tokenizer import TooLong

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
OFFLOAD_VALUES = 50_000  # responses larger than this many numbers serialize off the event loop
# Texts up to this many characters in all are tokenized on the event loop (~40 us for a 100-character
# sentence): the hop to the worker pool costs more than that and, at 64 clients, waited 4-7 ms for a thread.
INLINE_TOKENIZE_CHARS = 2_000


async def sequences_from(
    ctx: Context, kind: str, texts: list[str] | None, token_lists: list[list[int]] | None, truncate: bool
) -> tuple[list[np.ndarray], list[list[str]] | None]:
    """Validated token id arrays (and token strings for texts), or an ApiError naming the field."""
    assert ctx.bundle is not None
    count = len(texts) if texts is not None else len(token_lists or [])
    check_inputs(kind, count, texts, ctx.settings)
    if texts is None:
        sequences = check_token_lists(kind, token_lists or [], ctx.bundle, truncate)
        strings = None
    else:
        if ctx.tokenizer is None:
            raise ApiError(422, f"{kind}: this model's bundle has no tokenizer; send token ids instead", kind)
        started = time.perf_counter()
        try:
            if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
                encoded = ctx.tokenizer.encode(texts, truncate)
            else:
                encoded = await ctx.offload(ctx.tokenizer.encode, texts, truncate)
        except TooLong as exc:
            raise ApiError(422, too_long_message(kind, exc.index, exc.length, exc.limit),
                           f"{kind}[{exc.index}]") from None
        ctx.metrics.tokenize_seconds.observe(time.perf_counter() - started)
        sequences = [e.ids for e in encoded]
        strings = [e.tokens or [] for e in encoded]
    check_total_tokens(kind, sequences, ctx.settings)
    return sequences, strings


async def json_response(ctx: Context, body: dict[str, Any], values: int) -> Response:
    """orjson (numpy arrays natively); big bodies are serialized in the worker pool."""
    started = time.perf_counter()
    if values > OFFLOAD_VALUES:
        content = await ctx.offload(orjson.dumps, body, None, JSON_OPTIONS)
    else:
        content = orjson.dumps(body, option=JSON_OPTIONS)
    ctx.metrics.serialize_seconds.observe(time.perf_counter() - started)
    return Response(content, media_type="application/json")
