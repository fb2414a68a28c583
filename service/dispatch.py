"""Queue a request's sequences and wait for them: overload, timeout and a client that went away."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from starlette.requests import Request

from .batcher import Batcher, BatcherStopped, QueueFull, SequenceExpired
from .errors import ApiError


class ClientGone(Exception):
    """The client disconnected; nothing is sent back."""


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects. The body has been read already, so the next ASGI message is
    the disconnect (uvicorn sends it when the peer closes; test transports once the response is done)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def run_sequences(request: Request, batcher: Batcher, sequences: list[np.ndarray], attentions: bool,
                        timeout_s: float) -> list[Any]:
    try:
        futures = batcher.submit(sequences, attentions, timeout_s)
    except QueueFull:
        raise ApiError(503, "the server is at capacity (queue full); retry shortly", None,
                       {"Retry-After": "1"}) from None
    except BatcherStopped:
        raise ApiError(503, "the server is shutting down; retry on another replica", None,
                       {"Retry-After": "1"}) from None
    gathered = asyncio.gather(*futures, return_exceptions=True)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({gathered, gone}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if gathered in done:
        results = gathered.result()
        errors = [r for r in results if isinstance(r, BaseException)]
        if any(isinstance(e, SequenceExpired) for e in errors):
            raise ApiError(504, f"the request was not answered within {timeout_s:g} s (request_timeout_s)")
        if errors:
            raise ApiError(500, "inference failed for the batch this request ran in; see the server log")
        return results
    gathered.cancel()  # cancels every Future: the batcher drops sequences that have not run yet
    if gone in done:
        raise ClientGone()
    raise ApiError(504, f"the request was not answered within {timeout_s:g} s (request_timeout_s)")
