"""The batcher with a fake runner whose output encodes its input, so a mixed-up result is caught."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.batcher import (
    Batcher,
    BatcherStopped,
    BatchFailed,
    Pending,
    QueueFull,
    SequenceExpired,
    select_batch,
)


class EchoRunner:
    """Returns each sequence's ids times 10 and records every batch it ran."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[list[int]]] = []
        self.delay_s, self.fail_on = delay_s, fail_on
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, sequences: list[np.ndarray], attentions: bool) -> list[tuple[list[int], bool]]:
        self.gate.wait(5)
        self.batches.append([s.tolist() for s in sequences])
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and any(self.fail_on in s for s in sequences):
            raise RuntimeError("boom")
        return [((s * 10).tolist(), attentions) for s in sequences]


def _batcher(runner, **kw) -> Batcher:
    opts = {"max_batch_size": 8, "max_batch_tokens": 1000, "max_queue": 1000, "max_padding_ratio": 1.5} | kw
    b = Batcher(runner, **opts)
    b.start()
    return b


def _p(length: int, attentions: bool = False, loop=None) -> Pending:
    return Pending(np.arange(length), attentions, None, loop, deadline=1e18)  # type: ignore[arg-type]


def test_select_groups_by_length_around_the_oldest() -> None:
    pending = [_p(10), _p(50), _p(11), _p(9), _p(48), _p(12)]
    batch = select_batch(pending, max_batch_size=8, max_batch_tokens=10_000, max_padding_ratio=1.5)
    assert sorted(len(p) for p in batch) == [9, 10, 11, 12]
    assert pending[0] in batch


def test_select_respects_size_and_token_budget() -> None:
    pending = [_p(10) for _ in range(10)]
    assert len(select_batch(pending, 4, 10_000, 1.5)) == 4
    assert len(select_batch(pending, 8, 30, 1.5)) == 3  # 3 x 10 padded tokens
    assert len(select_batch(pending, 4, 10_000, 1.5, window=10)) == 4  # a wider window, still at most 4
    assert len(select_batch(pending, 1, 10_000, 1.5, window=10)) == 1


def test_select_never_mixes_attention_requests() -> None:
    pending = [_p(10, attentions=True), _p(10), _p(10, attentions=True)]
    batch = select_batch(pending, 8, 10_000, 1.5)
    assert [p.attentions for p in batch] == [True, True]


def test_select_runs_the_oldest_alone_when_nothing_fits() -> None:
    pending = [_p(100), _p(3), _p(4)]
    assert select_batch(pending, 8, 10_000, 1.5) == [pending[0]]


def test_each_caller_gets_its_own_result_in_order() -> None:
    runner = EchoRunner(delay_s=0.002)
    batcher = _batcher(runner)

    async def main() -> list:
        async def one(i: int) -> tuple[list, list]:
            seqs = [np.arange(i % 7 + 1) + i, np.arange(i % 5 + 1) + 1000 + i]
            results = await asyncio.gather(*batcher.submit(seqs, False, 10))
            return [s.tolist() for s in seqs], results

        return await asyncio.gather(*(one(i) for i in range(60)))

    try:
        for seqs, results in asyncio.run(main()):
            assert [r[0] for r in results] == [[x * 10 for x in s] for s in seqs]
    finally:
        batcher.stop()
    assert max(len(b) for b in runner.batches) > 1  # batches really formed
    assert sum(len(b) for b in runner.batches) == 120  # every sequence ran exactly once


def test_a_failed_batch_fails_only_its_own_requests() -> None:
    runner = EchoRunner(fail_on=666)
    batcher = _batcher(runner, max_batch_size=1)

    async def main():
        bad = batcher.submit([np.array([666])], False, 10)[0]
        good = batcher.submit([np.array([1, 2])], False, 10)[0]
        return await asyncio.gather(bad, good, return_exceptions=True)

    try:
        bad, good = asyncio.run(main())
    finally:
        batcher.stop()
    assert isinstance(bad, BatchFailed)
    assert good == ([10, 20], False)


def test_queue_full_is_refused_whole() -> None:
    runner = EchoRunner()
    runner.gate.clear()  # the runner blocks: nothing leaves the queue
    batcher = _batcher(runner, max_queue=3, max_batch_size=1)

    async def main():
        first = batcher.submit([np.array([1])], False, 10)
        await asyncio.sleep(0.05)  # the worker takes it and blocks in the runner
        held = batcher.submit([np.array([2]), np.array([3])], False, 10)
        with pytest.raises(QueueFull):
            batcher.submit([np.array([4]), np.array([5])], False, 10)
        assert batcher.depth == 2
        runner.gate.set()
        return await asyncio.gather(*first, *held)

    try:
        assert [r[0] for r in asyncio.run(main())] == [[10], [20], [30]]
    finally:
        batcher.stop()


def test_cancelled_sequences_are_dropped_before_they_run() -> None:
    runner = EchoRunner()
    runner.gate.clear()
    batcher = _batcher(runner, max_batch_size=1)

    async def main():
        first = batcher.submit([np.array([1])], False, 10)[0]
        await asyncio.sleep(0.05)
        gone = batcher.submit([np.array([7]), np.array([8])], False, 10)
        for f in gone:
            f.cancel()
        runner.gate.set()
        await first
        return await asyncio.gather(*batcher.submit([np.array([9])], False, 10))

    try:
        assert asyncio.run(main()) == [([90], False)]
    finally:
        batcher.stop()
    assert [7] not in [s for b in runner.batches for s in b]
    assert [8] not in [s for b in runner.batches for s in b]


def test_expired_sequences_fail_without_running() -> None:
    runner = EchoRunner()
    runner.gate.clear()
    batcher = _batcher(runner, max_batch_size=1)

    async def main():
        first = batcher.submit([np.array([1])], False, 10)[0]
        await asyncio.sleep(0.05)
        late = batcher.submit([np.array([5])], False, timeout_s=0.01)[0]
        await asyncio.sleep(0.05)
        runner.gate.set()
        await first
        return await asyncio.gather(late, return_exceptions=True)

    try:
        (late,) = asyncio.run(main())
    finally:
        batcher.stop()
    assert isinstance(late, SequenceExpired)
    assert [5] not in [s for b in runner.batches for s in b]


def test_stop_finishes_what_is_queued_then_refuses() -> None:
    runner = EchoRunner(delay_s=0.01)
    batcher = _batcher(runner, max_batch_size=1)

    async def main():
        futures = batcher.submit([np.array([i]) for i in range(1, 6)], False, 10)
        stopper = asyncio.get_running_loop().run_in_executor(None, batcher.stop)
        results = await asyncio.gather(*futures)
        await stopper
        with pytest.raises(BatcherStopped):
            batcher.submit([np.array([1])], False, 10)
        return results

    assert [r[0] for r in asyncio.run(main())] == [[10], [20], [30], [40], [50]]


def test_a_dead_worker_fails_every_waiting_request() -> None:
    class Exploding:
        def __call__(self, sequences, attentions):
            raise SystemExit("worker killed")  # not an Exception: escapes the per-batch handler

    batcher = _batcher(Exploding(), max_batch_size=1)

    async def main():
        futures = batcher.submit([np.array([1]), np.array([2]), np.array([3])], False, 10)
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
        with pytest.raises(BatcherStopped):
            batcher.submit([np.array([1])], False, 10)
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, BatchFailed) for r in results)
    batcher.stop()


def test_queue_delay_lets_a_batch_fill() -> None:
    runner = EchoRunner()
    batcher = _batcher(runner, max_queue_delay_s=0.2, max_batch_size=4)

    async def main():
        a = batcher.submit([np.array([1])], False, 10)
        await asyncio.sleep(0.02)
        b = batcher.submit([np.array([2]), np.array([3]), np.array([4])], False, 10)
        return await asyncio.gather(*a, *b)

    try:
        asyncio.run(main())
    finally:
        batcher.stop()
    assert runner.batches == [[[1], [2], [3], [4]]]



def test_several_workers_run_batches_at_the_same_time() -> None:
    runner = EchoRunner(delay_s=0.1)
    batcher = _batcher(runner, max_batch_size=1, workers=3)

    async def main():
        started = time.monotonic()
        results = await asyncio.gather(*batcher.submit([np.array([i]) for i in range(1, 4)], False, 10))
        return results, time.monotonic() - started

    try:
        results, elapsed = asyncio.run(main())
    finally:
        batcher.stop()
    assert [r[0] for r in results] == [[10], [20], [30]]
    assert elapsed < 0.25  # three 0.1 s batches in parallel, not 0.3 s in a row


def test_select_takes_candidates_only_from_the_window() -> None:
    pending = [_p(10), _p(50), _p(50), _p(10), _p(10)]
    assert select_batch(pending, 8, 10_000, 1.5, window=3) == [pending[0]]  # the 10s beyond the window wait
    assert select_batch(pending, 8, 10_000, 1.5, window=4) == [pending[0], pending[3]]
    assert len(select_batch(pending, 8, 10_000, 1.5)) == 3  # default window: max_batch_size


class TaggedRunner(EchoRunner):
    """An EchoRunner whose results say which runner ran them."""

    def __init__(self, tag: str, log: list[str], delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.tag, self.log = tag, log

    def __call__(self, sequences, attentions):
        self.log.append(self.tag)
        return [(r, self.tag) for r, _ in super().__call__(sequences, attentions)]


def test_a_batch_alone_runs_on_the_lone_runner() -> None:
    log: list[str] = []
    batcher = _batcher(TaggedRunner("shared", log), workers=2, lone_runner=TaggedRunner("lone", log))

    async def main():
        return await asyncio.gather(*batcher.submit([np.array([1, 2])], False, 10))

    try:
        first = asyncio.run(main())
        second = asyncio.run(main())
    finally:
        batcher.stop()
    assert first == second == [([10, 20], "lone")]
    assert log == ["lone", "lone"]


def test_batches_that_overlap_share_the_cores() -> None:
    """While one batch runs, or while more work waits, batches run on the per-worker runner."""
    log: list[str] = []
    shared = TaggedRunner("shared", log, delay_s=0.05)
    lone = TaggedRunner("lone", log, delay_s=0.05)
    batcher = _batcher(shared, workers=2, max_batch_size=1, lone_runner=lone)

    async def main():
        return await asyncio.gather(*batcher.submit([np.array([i]) for i in range(1, 7)], False, 10))

    try:
        results = asyncio.run(main())
    finally:
        batcher.stop()
    assert [r[0] for r in results] == [[10 * i] for i in range(1, 7)]  # each caller still gets its own result
    assert log.count("shared") >= 5  # only the last one, with nothing queued behind it, may run alone
    assert len(log) == 6


def test_a_batch_wakes_its_event_loop_once() -> None:
    calls: list[int] = []
    runner = EchoRunner()
    runner.gate.clear()
    batcher = _batcher(runner)

    async def main():
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback, *args, **kw):
            calls.append(len(args[0]) if args else 0)
            return original(callback, *args, **kw)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        futures = batcher.submit([np.array([i]) for i in range(1, 6)], False, 10)
        runner.gate.set()
        return await asyncio.gather(*futures)

    try:
        results = asyncio.run(main())
    finally:
        batcher.stop()
    assert [r[0] for r in results] == [[10], [20], [30], [40], [50]]
    assert sum(calls) == 5 and len(calls) == len(runner.batches)  # one call per batch, carrying all of it


def test_attention_batches_keep_their_cells_within_the_budget() -> None:
    pending = [_p(10, attentions=True) for _ in range(6)] + [_p(10) for _ in range(6)]
    assert len(select_batch(pending, 8, 10_000, 1.5, max_attention_cells=300)) == 3  # 3 x 10^2 cells
    assert len(select_batch(pending[6:], 8, 10_000, 1.5, max_attention_cells=300)) == 6  # no attention: no budget
    assert len(select_batch([_p(40, attentions=True), *pending], 8, 10_000, 100.0, max_attention_cells=300)) == 1


def test_every_batch_keeps_its_scores_within_the_budget() -> None:
    """size x longest^2 <= max_score_cells whether or not attention is returned; a longer input runs alone."""
    pending = [_p(10) for _ in range(6)]
    assert len(select_batch(pending, 8, 10_000, 1.5, max_score_cells=400)) == 4  # 4 x 10^2 cells
    assert len(select_batch(pending, 8, 10_000, 1.5)) == 6  # no budget
    long_first = [_p(30), _p(30), _p(30)]
    assert len(select_batch(long_first, 8, 10_000, 1.5, max_score_cells=1000)) == 1  # 2 x 900 > 1000: alone
    assert len(select_batch(long_first, 8, 10_000, 1.5, max_score_cells=1800)) == 2


def test_after_a_failed_batch_each_sequence_runs_alone() -> None:
    runner = EchoRunner(fail_on=666)
    batcher = _batcher(runner, max_queue_delay_s=0.2, workers=1)

    async def main():
        futures = batcher.submit([np.array([1]), np.array([666]), np.array([2])], False, 10)
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        first, bad, last = asyncio.run(main())
    finally:
        batcher.stop()
    assert runner.batches == [[[1], [666], [2]], [[1]], [[666]], [[2]]]
    assert (first, last) == (([10], False), ([20], False))
    assert isinstance(bad, BatchFailed)


def test_finish_reduces_each_result_in_the_worker() -> None:
    batcher = _batcher(EchoRunner())

    async def main():
        futures = batcher.submit([np.array([1, 2]), np.array([3])], True, 10, finish=lambda r: sum(r[0]))
        return await asyncio.gather(*futures)

    try:
        assert asyncio.run(main()) == [30, 30]
    finally:
        batcher.stop()


def test_a_runner_returning_the_wrong_count_fails_every_request_in_it() -> None:
    calls: list[int] = []

    def one_too_many(sequences: list[np.ndarray], attentions: bool) -> list[int]:
        calls.append(len(sequences))
        return [int(s[0]) for s in sequences] + [0]

    batcher = _batcher(one_too_many, max_queue_delay_s=0.2, workers=1)

    async def main():
        futures = batcher.submit([np.array([1]), np.array([2])], False, 10)
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
    finally:
        batcher.stop()
    assert calls == [2, 1, 1]  # the batch, then each alone
    assert all(isinstance(o, BatchFailed) for o in outcomes)
