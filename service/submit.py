"""The submit stage: queue a request's sequences with the batcher and wait for them: overload, timeout and a
client that went away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.requests import Request

from .batcher import Batcher, BatcherStopped, QueueFull, SequenceExpired
from .connections import DISCONNECTED
from .errors import ApiError, ClientGone


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects. The body has been read already, so the next ASGI message is
    the disconnect (uvicorn sends it when the peer closes; test transports once the response is done)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def settle(outcome: asyncio.Future[str], what: str) -> None:
    if not outcome.done():
        outcome.set_result(what)


def too_late(timeout_s: float) -> ApiError:
    return ApiError(504, f"the request was not answered within {timeout_s:g} s (request_timeout_s)")


async def first_of(request: Request, outcome: asyncio.Future[str], timeout_s: float) -> None:
    """Returns once ``outcome`` is resolved by the caller's callbacks ("done"); raises ClientGone when the client
    leaves first, the 504 when ``timeout_s`` passes first. uvicorn with attnserve's protocol says when the
    connection drops (service/connections.py); any other server, or a test transport, is watched through
    receive() in a task."""
    gone = request.scope.get("extensions", {}).get(DISCONNECTED)
    watcher = None
    if gone is None:
        gone = watcher = asyncio.ensure_future(_disconnected(request))
    went = lambda _: settle(outcome, "gone")  # noqa: E731
    gone.add_done_callback(went)
    timer = asyncio.get_running_loop().call_later(timeout_s, settle, outcome, "timeout")
    try:
        what = await outcome
    finally:
        timer.cancel()
        gone.remove_done_callback(went)
        if watcher is not None:
            watcher.cancel()
    if what == "gone":
        raise ClientGone()
    if what == "timeout":
        raise too_late(timeout_s)


async def run_sequences(request: Request, batcher: Batcher, sequences: list[np.ndarray], attentions: bool,
                        timeout_s: float, finish: Callable[[Any], Any] | None = None) -> list[Any]:
    try:
        futures = batcher.submit(sequences, attentions, timeout_s, finish)
    except QueueFull:
        raise ApiError(503, "the server is at capacity (queue full); retry shortly", None,
                       {"Retry-After": "1"}) from None
    except BatcherStopped:
        raise ApiError(503, "the server is shutting down; retry on another replica", None,
                       {"Retry-After": "1"}) from None
    # One future for the request's outcome, resolved by whichever comes first: the last sequence done, the
    # client gone, the deadline. No task per request and no asyncio.wait: that was a tenth of the event loop's
    # CPU per one-sentence request. (Not gather either: a cancelled gather whose result nobody reads logs an
    # ERROR per request.)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    left = len(futures)

    def one_done(_: asyncio.Future) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            settle(outcome, "done")

    for future in futures:
        future.add_done_callback(one_done)
    done = False
    try:
        await first_of(request, outcome, timeout_s)
        done = True
    finally:
        if not done:
            _give_up(futures)
    errors = [f.exception() for f in futures]
    if any(isinstance(e, SequenceExpired) for e in errors):
        raise too_late(timeout_s)
    if any(e is not None for e in errors):
        raise ApiError(500, "inference failed for this input; the server log has the details")
    return [f.result() for f in futures]


def _give_up(futures: list[asyncio.Future]) -> None:
    """Cancel what has not run (the batcher drops it) and read what has, so asyncio logs nothing."""
    for future in futures:
        if not future.cancel() and not future.cancelled():
            future.exception()
