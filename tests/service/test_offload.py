"""The worker pool's tokenizing: admitted by characters, dropped when its client leaves or its time is up, and
counted until the work has really finished. The pool's threads are held by a gate, so what waits is known."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge
from starlette.requests import Request

from service.connections import DISCONNECTED
from service.errors import ApiError, ClientGone
from service.offload import BULK_CHARS, CpuPool


def in_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def request_with(gone: asyncio.Future | None) -> Request:
    """A request on attnserve's protocol, whose connection drops when ``gone`` is resolved (None: never)."""
    return Request({"type": "http",
                    "extensions": {DISCONNECTED: gone or asyncio.get_running_loop().create_future()}})


class Gate:
    """Jobs that wait for the gate to open and record that they ran."""

    def __init__(self) -> None:
        self.open, self.ran = threading.Event(), []

    def job(self, name: str) -> str:
        assert self.open.wait(10)
        self.ran.append(name)
        return name


@pytest.fixture
def pool() -> Iterator[CpuPool]:
    pool = CpuPool(1, 100, Gauge("chars", "", registry=CollectorRegistry()))
    yield pool
    pool.shutdown()


def gauge(pool: CpuPool) -> float:
    return pool.gauge._value.get()  # type: ignore[union-attr]


async def settled(pool: CpuPool) -> None:
    """Lets the pool's thread report back to the loop."""
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not pool.executor._work_queue.qsize():  # type: ignore[attr-defined]
            break
    await asyncio.sleep(0.05)


@in_loop
async def test_work_past_the_bound_gets_503_at_once_and_a_request_alone_always_runs(pool: CpuPool) -> None:
    gate = Gate()
    loop = asyncio.get_running_loop()
    first = loop.create_task(pool.tokenize(request_with(None), 60, 10, gate.job, "first"))
    await asyncio.sleep(0.05)
    assert pool.chars == 60 and gauge(pool) == 60
    with pytest.raises(ApiError) as refused:
        await pool.tokenize(request_with(None), 41, 10, gate.job, "second")
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    assert "60 characters are waiting" in refused.value.message and "max_tokenize_queue_chars" in refused.value.message
    fits = loop.create_task(pool.tokenize(request_with(None), 40, 10, gate.job, "fits"))
    await asyncio.sleep(0.05)
    gate.open.set()
    assert await first == "first" and await fits == "fits"
    await settled(pool)
    assert pool.chars == 0 and gauge(pool) == 0
    # nothing admitted: one request larger than the bound still runs
    assert await pool.tokenize(request_with(None), 1000, 10, gate.job, "large") == "large"
    assert gate.ran == ["first", "fits", "large"]


@in_loop
async def test_work_whose_client_leaves_never_runs_and_is_released(pool: CpuPool) -> None:
    gate = Gate()
    loop = asyncio.get_running_loop()
    busy = loop.create_task(pool.tokenize(request_with(None), 10, 10, gate.job, "busy"))
    gone = loop.create_future()
    waiting = loop.create_task(pool.tokenize(request_with(gone), 20, 10, gate.job, "left"))
    await asyncio.sleep(0.05)
    assert pool.chars == 30
    gone.set_result(None)
    with pytest.raises(ClientGone):
        await waiting
    await asyncio.sleep(0.05)
    assert pool.chars == 10  # the job that had not started is dropped at once
    gate.open.set()
    assert await busy == "busy"
    await settled(pool)
    assert gate.ran == ["busy"] and pool.chars == 0


@in_loop
async def test_a_client_already_gone_is_not_given_work(pool: CpuPool) -> None:
    gate = Gate()
    gate.open.set()
    gone = asyncio.get_running_loop().create_future()
    gone.set_result(None)
    with pytest.raises(ClientGone):
        await pool.tokenize(request_with(gone), 10, 10, gate.job, "after hanging up")
    await settled(pool)
    assert gate.ran == [] and pool.chars == 0


@in_loop
async def test_work_that_waits_past_the_timeout_gets_504_and_never_runs(pool: CpuPool) -> None:
    gate = Gate()
    loop = asyncio.get_running_loop()
    busy = loop.create_task(pool.tokenize(request_with(None), 10, 10, gate.job, "busy"))
    await asyncio.sleep(0.02)
    with pytest.raises(ApiError) as late:
        await pool.tokenize(request_with(None), 10, 0.1, gate.job, "late")
    assert late.value.status == 504 and "request_timeout_s" in late.value.message
    gate.open.set()
    await busy
    await settled(pool)
    assert gate.ran == ["busy"] and pool.chars == 0


@in_loop
async def test_running_work_counts_until_it_finishes_and_its_failure_is_read(pool: CpuPool,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A job already running when its client leaves cannot be stopped: its characters stay admitted until it
    ends, and its exception is read (asyncio logs nothing)."""
    started, release = threading.Event(), threading.Event()

    def failing() -> None:
        started.set()
        assert release.wait(10)
        raise ValueError("the tokenizer refused it")

    gone = asyncio.get_running_loop().create_future()
    task = asyncio.get_running_loop().create_task(pool.tokenize(request_with(gone), 50, 10, failing))
    assert await asyncio.to_thread(started.wait, 10)
    gone.set_result(None)
    with pytest.raises(ClientGone):
        await task
    assert pool.chars == 50
    release.set()
    await settled(pool)
    assert pool.chars == 0
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@in_loop
async def test_a_few_thousand_characters_never_wait_behind_megabytes(pool: CpuPool) -> None:
    gate = Gate()
    loop = asyncio.get_running_loop()
    pool.max_chars = 10**9
    bulk = [loop.create_task(pool.tokenize(request_with(None), BULK_CHARS + 1, 10, gate.job, f"bulk{i}"))
            for i in range(3)]
    await asyncio.sleep(0.05)
    small = await asyncio.wait_for(pool.tokenize(request_with(None), 3_000, 10, lambda: "small"), 5)
    assert small == "small" and gate.ran == []  # answered while every bulk job still waited
    gate.open.set()
    assert await asyncio.gather(*bulk) == ["bulk0", "bulk1", "bulk2"]
