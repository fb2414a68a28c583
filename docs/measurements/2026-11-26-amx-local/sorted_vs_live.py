"""Where bf16's service layout loses against its ceiling, in one process: (a) the ceiling's way, one worker on both
threads over length-sorted batches of 32; (b) the service's layout, 2 workers x 1 thread, over the same sorted
batches; (c) the same 2 workers over batches of 32 drawn at random (no grouping by length). Interleaved rounds.

    PYTHONPATH=. python docs/measurements/2026-11-26-amx-local/sorted_vs_live.py build/minilm bf16 5 3
"""

import random
import statistics
import sys
import threading
import time
from pathlib import Path

from bundle import load_bundle
from service.precision import cpu_info
from service.runtime import Runtime
from service.settings import Settings
from service.tokenize import TextTokenizer

folder, precision = Path(sys.argv[1]), sys.argv[2]
seconds, rounds = float(sys.argv[3]), int(sys.argv[4])
bundle = load_bundle(folder)
texts = Path("loadtest/corpus.txt").read_text().splitlines()
ids = [e.ids for e in TextTokenizer(folder / "tokenizer.json", bundle.max_length).encode(texts, True)]
ordered = sorted(ids, key=len)
sorted_batches = [ordered[i: i + 32] for i in range(0, len(ordered), 32)]
shuffled = random.Random(0).sample(ids, len(ids))
random_batches = [shuffled[i: i + 32] for i in range(0, len(shuffled), 32)]

one = Runtime(bundle, Settings(model=folder, engine="openvino", precision=precision, inference_workers=1))
two = Runtime(bundle, Settings(model=folder, engine="openvino", precision=precision))
for runtime in (one, two):
    for batch in sorted_batches + random_batches:  # every shape once
        runtime.run(batch, False)


def rate(runtime: Runtime, batches: list, workers: int) -> float:
    done, stop, lock = [0], time.monotonic() + seconds, threading.Lock()
    order = random.Random(1).sample(range(len(batches)), len(batches))

    def work(w: int) -> None:
        k = w * len(order) // workers
        while time.monotonic() < stop:
            batch = batches[order[k % len(order)]]
            runtime.run(batch, False)
            with lock:
                done[0] += len(batch)
            k += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started)


cases = {"1x2 sorted (ceiling)": (one, sorted_batches, 1), "2x1 sorted": (two, sorted_batches, 2),
         "2x1 random": (two, random_batches, 2), "1x2 random": (one, random_batches, 1)}
print(f"cpu: {cpu_info()[0]} | OpenVINO {precision} | {seconds:g} s x {rounds} rounds | batches of 32")
results: dict[str, list[float]] = {name: [] for name in cases}
for r in range(rounds):
    for name in (list(cases) if r % 2 == 0 else list(reversed(cases))):
        results[name].append(rate(*cases[name]))
        print(f"round {r} {name:22s} {results[name][-1]:7.1f} sentences/s", flush=True)
for name, rates in results.items():
    print(f"median {name:22s} {statistics.median(rates):7.1f} sentences/s")
