"""The in-process ceiling: the bundle's own graphs on batches grouped by length, no HTTP."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

B = TypeVar("B", bound=Sequence)


def whole_passes_per_s(run: Callable[[B], object], batches: list[B], budget_s: float, seed: int = 0) -> float:
    """Items per second over whole passes of ``batches`` in one shuffled order: the corpus's mix of lengths. A
    pass cut short by the budget would count whatever came first (length-sorted batches: the short ones) and
    overstate the rate. One pass at least; another only while it fits in the budget."""
    order = np.random.default_rng(seed).permutation(len(batches))
    passes, done, started, elapsed = 0, 0, time.perf_counter(), 0.0
    while passes == 0 or elapsed * (passes + 1) / passes <= budget_s:  # the next pass ends within the budget
        for i in order:
            run(batches[i])
            done += len(batches[i])
        passes, elapsed = passes + 1, time.perf_counter() - started
    return done / elapsed


class Ceiling:
    """The bundle's own graphs for batches (the padded optimized or default graph, and the packed one), one
    ONNX Runtime session on all cores, no HTTP: batches grouped by length. The best graph and size is the
    ceiling."""

    def __init__(self, bundle: Path, texts: list[str]) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((bundle / "config.json").read_text())
        graphs = config["graphs"]
        self.padded = graphs.get("optimized", graphs["default"])["file"]
        self.packed: str | None = graphs["packed"]["file"] if "packed" in graphs else None
        self.paths = {name: bundle / name for name in (self.padded, self.packed) if name}
        # the graph the service's workers run batches on (packed on a CPU when the bundle has it)
        self.service_graph = self.packed or self.padded
        self.sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                         for name, path in self.paths.items()}
        tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(config["serving"]["max_length"])
        self.ids = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)

    def _run(self, batch: list[list[int]], graph: str | None = None, session=None) -> None:
        graph = graph or self.padded
        session = session or self.sessions[graph]
        if graph == self.packed:
            from bundle.packing import pack

            session.run(None, pack([np.asarray(row, dtype=np.int64) for row in batch])[0])
            return
        width = max(map(len, batch))
        arr = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(arr)
        for i, row in enumerate(batch):
            arr[i, : len(row)] = row
            mask[i, : len(row)] = 1
        session.run(None, {"input_ids": arr, "attention_mask": mask})

    @functools.cached_property
    def _one_thread_session(self):  # the service's layout: one thread per call, made once
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(self.paths[self.service_graph]), options, providers=["CPUExecutionProvider"])

    def _batches(self, size: int) -> list[list[list[int]]]:
        return [self.ids[i : i + size] for i in range(0, len(self.ids), size)]

    def rate(self, size: int, budget_s: float, graph: str | None = None) -> float:
        """Sentences/s over whole passes of length-sorted batches of ``size``, taken in a random order."""
        batches = self._batches(size)
        self._run(batches[len(batches) // 2], graph)  # warm
        return whole_passes_per_s(lambda batch: self._run(batch, graph), batches, budget_s, seed=size)

    def rate_in_workers(self, size: int, budget_s: float, workers: int = 2) -> float:
        """Sentences/s with the service's CPU layout: ``workers`` threads sharing one 1-thread session of its
        batch graph, each running its own length-sorted batches. Batch 1 against the best size bounds what
        batching can add."""
        import threading

        session = self._one_thread_session
        batches = self._batches(size)
        order = np.random.default_rng(size).permutation(len(batches))
        done = [0] * workers
        stop_at = time.perf_counter() + budget_s

        def work(w: int) -> None:
            k = w * len(order) // workers
            while time.perf_counter() < stop_at:
                batch = batches[order[k % len(order)]]
                self._run(batch, self.service_graph, session)
                done[w] += len(batch)
                k += 1

        self._run(batches[0], self.service_graph, session)  # warm
        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - started)

    def single_p50_ms(self, count: int = 200) -> float:
        """Median time of one sentence alone, over sentences spread across the length range."""
        times = []
        for row in self.ids[:: max(1, len(self.ids) // count)]:
            started = time.perf_counter()
            self._run([row])
            times.append(time.perf_counter() - started)
        return 1000 * float(np.median(times))
