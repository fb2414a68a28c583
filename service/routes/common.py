"""Steps both inference routes share: inputs -> checked token sequences, and serialization."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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
    ctx: Context, kind: str, texts: list[str] | None, token_lists: list[list[int]] | None, truncate: bool | None
) -> tuple[list[np.ndarray], list[list[str]] | None]:
    """Validated token id arrays (and token strings for texts), or an ApiError naming the field. ``truncate``
    None: the route has no such option (inputs past the maximum are refused, with a hint that fits)."""
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
                encoded = ctx.tokenizer.encode(texts, bool(truncate))
            else:
                encoded = await ctx.offload(ctx.tokenizer.encode, texts, bool(truncate))
        except TooLong as exc:
            raise ApiError(422, too_long_message(kind, exc.index, exc.length, exc.limit, truncate is not None),
                           f"{kind}[{exc.index}]") from None
        ctx.metrics.tokenize_seconds.observe(time.perf_counter() - started)
        sequences = [e.ids for e in encoded]
        strings = [e.tokens or [] for e in encoded]
    check_total_tokens(kind, sequences, ctx.settings)
    return sequences, strings


CHUNK_VALUES = 262_144  # numbers per orjson call when serializing a big body (~10 ms each)
SEND_BYTES = 1 << 20  # a big body goes out in pieces of about this size


def json_parts(value: Any, out: list[bytes]) -> None:
    """orjson, in pieces of at most CHUNK_VALUES numbers: orjson holds the GIL for a whole call, so one call over
    millions of numbers stalled the event loop even from another thread; between pieces the loop gets it back.
    The pieces are never joined into one buffer (a join of 100 MB holds the GIL too)."""
    if isinstance(value, dict):
        for i, (k, v) in enumerate(value.items()):
            out.append((b"{" if i == 0 else b",") + orjson.dumps(k) + b":")
            json_parts(v, out)
        out.append(b"}" if value else b"{}")
    elif (isinstance(value, list) and value and isinstance(value[0], np.ndarray | list | dict)) or (
            isinstance(value, np.ndarray) and value.size > CHUNK_VALUES and value.ndim > 1):
        for i, v in enumerate(value):
            out.append(b"[" if i == 0 else b",")
            json_parts(v, out)
        out.append(b"]")
    else:
        out.append(orjson.dumps(value, option=JSON_OPTIONS))


def body_chunks(value: Any) -> list[bytes]:
    parts: list[bytes] = []
    json_parts(value, parts)
    chunks, run, size = [], [], 0
    for part in parts:
        run.append(part)
        size += len(part)
        if size >= SEND_BYTES:
            chunks.append(b"".join(run))
            run, size = [], 0
    if run:
        chunks.append(b"".join(run))
    return chunks


class ChunkedJSON(Response):
    """A JSON body sent as several ASGI messages: the server writes ~1 MB at a time and waits for the socket in
    between, instead of copying the whole body into its write buffer on the event loop."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(None, media_type="application/json",
                         headers={"content-length": str(sum(map(len, chunks)))})
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for i, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(self.chunks) - 1})


async def json_response(ctx: Context, build: Callable[[], dict[str, Any]], values: int) -> Response:
    """Builds the body (pooling, selection, base64) and serializes it: on the event loop when small, else in the
    worker pool, in pieces, so that neither step holds the loop for long."""
    started = time.perf_counter()
    if values > OFFLOAD_VALUES:
        response: Response = ChunkedJSON(await ctx.offload(lambda: body_chunks(build())))
    else:
        response = Response(orjson.dumps(build(), option=JSON_OPTIONS), media_type="application/json")
    ctx.metrics.serialize_seconds.observe(time.perf_counter() - started)
    return response
