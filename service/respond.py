"""The response stage, shared by every route: pooled vectors in the asked format, and JSON built and sent in
pieces when large, so that neither step holds the event loop for long."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .answers import SMALL_ANSWER
from .context import Context
from .pool import b64, pooled_vector
from .runtime import SequenceResult

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


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


class Chunks(Response):
    """A body sent as several ASGI messages: the server writes a piece at a time and waits for the socket in
    between, instead of copying the whole body into its write buffer on the event loop."""

    def __init__(self, chunks: list[bytes], media_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(None, media_type=media_type,
                         headers={**(headers or {}), "content-length": str(sum(map(len, chunks)))})
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for i, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(self.chunks) - 1})


async def json_response(ctx: Context, build: Callable[[], dict[str, Any]], values: int) -> Response:
    """Builds the body (pooling, selection, base64) and serializes it: on the event loop when small, else in the
    worker pool, in pieces, so that neither step holds the loop for long."""
    started = time.perf_counter()
    if values > SMALL_ANSWER:  # serialized off the event loop
        response: Response = Chunks(await ctx.offload(lambda: body_chunks(build())))
    else:
        response = Response(orjson.dumps(build(), option=JSON_OPTIONS), media_type="application/json")
    ctx.metrics.serialize_seconds.observe(time.perf_counter() - started)
    return response


def pooled_vectors(results: list[SequenceResult], pooling: str, default_pooling: str, normalize: bool,
                   base64: bool, dimensions: int | None = None) -> list[np.ndarray] | list[str]:
    """One vector per input, as every route returns them: floats, or base64 of little-endian float32."""
    vectors = [pooled_vector(r, pooling, default_pooling, normalize, dimensions) for r in results]
    return [b64(v) for v in vectors] if base64 else vectors
