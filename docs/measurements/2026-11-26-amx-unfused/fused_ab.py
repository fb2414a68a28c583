"""OpenVINO's fused attention subgraph (snippets) against separate MatMul and Softmax kernels, in one process with
interleaved rounds, on the service's runtime: the plan's 2 workers x 1 thread over (a) batches of 32 sorted by
length and (b) the batches the service's own selection makes from 128 waiting sentences (recorded once from
`select_batch`, replayed identically for both), and (c) the one-call ceiling, 1 worker x 2 threads over (a).

    PYTHONPATH=. python docs/measurements/2026-11-26-amx-unfused/fused_ab.py build/minilm bf16 5 3

Runs at commit 12f5ec4, whose OpenVinoGraphs.session took ``fused_attention`` (the unfused default was taken back
for its memory: docs/performance.md, ninth session).
"""

import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bundle import load_bundle
from service.batcher import select_batch
from service.openvino_session import OpenVinoGraphs
from service.precision import cpu_info
from service.runtime import Runtime
from service.settings import Settings
from service.tokenize import TextTokenizer

folder, precision = Path(sys.argv[1]), sys.argv[2]
seconds, rounds = float(sys.argv[3]), int(sys.argv[4])
bundle = load_bundle(folder)
texts = Path("loadtest/corpus.txt").read_text().splitlines()
ids = [np.asarray(e.ids, dtype=np.int64)
       for e in TextTokenizer(folder / "tokenizer.json", bundle.max_length).encode(texts, True)]
ordered = sorted(ids, key=len)
sorted_batches = [ordered[i: i + 32] for i in range(0, len(ordered), 32)]


class Waiting:
    def __init__(self, sequence: np.ndarray) -> None:
        self.ids, self.attentions = sequence, False

    def __len__(self) -> int:
        return len(self.ids)


def runtimes(fused: bool) -> tuple[Runtime, Runtime]:
    """The service's layout and the ceiling's, with the batch sessions fused or not."""
    original = OpenVinoGraphs.session

    def session(self, kind, threads, precision, streams=1, fused_attention=True):
        return original(self, kind, threads, precision, streams, fused_attention=fused or fused_attention)

    OpenVinoGraphs.session = session  # type: ignore[method-assign]
    try:
        two = Runtime(bundle, Settings(model=folder, engine="openvino", precision=precision))
        one = Runtime(bundle, Settings(model=folder, engine="openvino", precision=precision, inference_workers=1))
    finally:
        OpenVinoGraphs.session = original  # type: ignore[method-assign]
    return two, one


layouts = {"fused": runtimes(True), "unfused": runtimes(False)}
plan = layouts["unfused"][0].plan
settings = Settings(model=folder, engine="openvino", precision=precision)
rng, live = random.Random(0), []
queue = [Waiting(rng.choice(ids)) for _ in range(128)]
for _ in range(200):
    batch = select_batch(queue, settings.max_batch_size, settings.max_batch_tokens, plan.padding_ratio, plan.window)
    for item in batch:
        queue.remove(item)
    queue.extend(Waiting(rng.choice(ids)) for _ in batch)
    live.append([item.ids for item in batch])
for two, one in layouts.values():  # every shape once
    for batch in sorted_batches + live:
        two.run(batch, False)
        one.run(batch, False)


def rate(runtime: Runtime, batches: list, workers: int) -> float:
    done, stop, lock = [0], time.monotonic() + seconds, threading.Lock()

    def work(w: int) -> None:
        k = w * len(batches) // workers
        while time.monotonic() < stop:
            runtime.run(batches[k % len(batches)], False)
            with lock:
                done[0] += len(batches[k % len(batches)])
            k += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started)


print(f"cpu: {cpu_info()[0]} | OpenVINO {precision} | {seconds:g} s x {rounds} rounds | {plan}")
cases = {f"{name} {what}": (rt, batches, workers) for name, (two, one) in layouts.items()
         for what, rt, batches, workers in (("2x1 sorted", two, sorted_batches, 2), ("2x1 live", two, live, 2),
                                            ("1x2 sorted (ceiling)", one, sorted_batches, 1))}
results: dict[str, list[float]] = {name: [] for name in cases}
for r in range(rounds):
    for name in (list(cases) if r % 2 == 0 else list(reversed(cases))):
        results[name].append(rate(*cases[name]))
        print(f"round {r} {name:30s} {results[name][-1]:7.1f} sentences/s", flush=True)
for name, rates in results.items():
    rate, base = statistics.median(rates), statistics.median(results["fused " + name.split(" ", 1)[1]])
    print(f"median {name:30s} {rate:7.1f} sentences/s ({rate / base:.3f}x fused)")
