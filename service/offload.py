"""The offload stage: a request's CPU work off the event loop (tokenizing long texts, large serializations), in
a pool of threads, with a lane of its own for tokenizing megabytes. Tokenizing is admitted by its characters: a
flood of texts that are cheap to send and dear to tokenize (4 MB of punctuation: ~4 s of CPU) meets a bound and a
503 at once, and work whose client has gone, or whose request has waited request_timeout_s, is dropped before it
starts instead of running for nobody."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Gauge
from starlette.requests import Request

from .connections import hung_up
from .errors import ApiError, ClientGone
from .submit import first_of, settle

T = TypeVar("T")


# Tokenizing more characters than this goes to a lane of its own, so that a request of a few thousand characters
# never waits behind megabytes (with 8 clients posting 4 MB of punctuation, a 3,000-character text waited 8 s)
BULK_CHARS = 100_000


class CpuPool:
    def __init__(self, threads: int, max_chars: int, gauge: Gauge | None = None) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="attnserve-cpu")
        # one thread: the tokenizer spreads a batch over every core by itself
        self.bulk = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnserve-bulk")
        self.max_chars, self.gauge = max_chars, gauge
        self.chars = 0  # characters admitted whose tokenizing has not finished (waiting or running)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Work whose cost the request has already paid for (serializing an answer the batcher computed)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def tokenize(self, request: Request, chars: int, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, counted as ``chars`` characters until it finishes. A request alone is
        always admitted; one that would take the characters admitted past ``max_chars`` gets 503. The wait ends
        at the client's disconnect (ClientGone) or after ``timeout_s`` (504); work not started then never runs."""
        if hung_up(request.scope):  # the client sent its body and left: nothing to run for
            raise ClientGone()
        if self.chars and self.chars + chars > self.max_chars:
            raise ApiError(503, f"the server is at capacity ({self.chars} characters are waiting to be tokenized; "
                                f"at most {self.max_chars}, max_tokenize_queue_chars); retry shortly", None,
                           {"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        self._count(chars)
        job = (self.bulk if chars > BULK_CHARS else self.executor).submit(fn, *args)
        job.add_done_callback(lambda _: self._release(loop, chars))  # finished, failed or cancelled
        waiting = asyncio.wrap_future(job)  # cancelling it cancels the job if it has not started
        outcome: asyncio.Future[str] = loop.create_future()
        waiting.add_done_callback(lambda _: settle(outcome, "done"))
        done = False
        try:
            await first_of(request, outcome, timeout_s)
            done = True
        finally:
            # a job not started is cancelled now (through ``waiting`` it would be on the loop's next turn, when
            # a thread may have taken it); one already running finishes and its result is dropped; one that has
            # just failed is read, so that asyncio logs nothing
            if not done:
                job.cancel()
                if not waiting.cancel() and not waiting.cancelled():
                    waiting.exception()
        return waiting.result()

    def _release(self, loop: asyncio.AbstractEventLoop, chars: int) -> None:
        def release() -> None:
            self._count(-chars)

        # from the job's own thread, or the loop's when it is cancelled; a closed loop admits nothing any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(release)

    def _count(self, chars: int) -> None:
        self.chars += chars
        if self.gauge is not None:
            self.gauge.set(self.chars)

    def shutdown(self) -> None:
        for executor in (self.executor, self.bulk):
            executor.shutdown(wait=False, cancel_futures=True)
