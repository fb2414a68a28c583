"""Padded against packed batches in one process, on the service's own runtime and batch selection: 64 sentences
always waiting (64 clients without HTTP), the plan's workers taking batches with `select_batch` under the plan's
padding limit and window, interleaved rounds. Both layouts live in the same process and take turns, so a host whose
speed drifts between server starts (the AMX host did, 1.6x) still compares them fairly.

    PYTHONPATH=. python docs/measurements/2026-11-26-packed-ov/graphs_ab.py build/minilm fp32 [seconds] [rounds]
    PYTHONPATH=. python docs/measurements/2026-11-26-packed-ov/graphs_ab.py /tmp/b/minilm bf16 6 3   # on AMX
"""

import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle import load_bundle
from service.batcher import select_batch
from service.precision import cpu_info
from service.runtime import Runtime
from service.settings import Settings
from service.tokenize import TextTokenizer

folder, precision = Path(sys.argv[1]), sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
WAITING = 64


@dataclass(eq=False)
class Waiting:
    ids: np.ndarray
    attentions: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def throughput(runtime: Runtime, settings: Settings, sentences: list[np.ndarray], seed: int) -> tuple[float, float]:
    """Sentences/s and mean batch over ``seconds``, the plan's workers each taking the next batch from one queue."""
    rng, lock, plan = random.Random(seed), threading.Lock(), runtime.plan
    queue = [Waiting(rng.choice(sentences)) for _ in range(WAITING)]
    done, batches, stop = [0], [0], time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop:
            with lock:
                batch = select_batch(queue, settings.max_batch_size, settings.max_batch_tokens, plan.padding_ratio,
                                     plan.window)
                for item in batch:
                    queue.remove(item)
                queue.extend(Waiting(rng.choice(sentences)) for _ in batch)  # each answered client asks again
            runtime.run([item.ids for item in batch], False)
            with lock:
                done[0] += len(batch)
                batches[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(plan.workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started), done[0] / max(1, batches[0])


bundle = load_bundle(folder)
texts = Path("loadtest/corpus.txt").read_text().splitlines()
sentences = [e.ids for e in TextTokenizer(folder / "tokenizer.json", bundle.max_length).encode(texts, True)]
layouts = {}
for graph in ("default", "packed"):
    settings = Settings(model=folder, engine="openvino", precision=precision, graph=graph)
    layouts[graph] = (Runtime(bundle, settings), settings)
    layouts[graph][0].warmup(settings.max_batch_size)
print(f"cpu: {cpu_info()[0]} | OpenVINO {precision} | {seconds:g} s x {rounds} rounds | {WAITING} waiting")
for graph, (runtime, _) in layouts.items():
    print(f"{graph}: {runtime.plan}")
results: dict[str, list[float]] = {g: [] for g in layouts}
for r in range(rounds):
    for graph in (("default", "packed") if r % 2 == 0 else ("packed", "default")):
        rate, mean_batch = throughput(*layouts[graph], sentences, seed=r)
        results[graph].append(rate)
        print(f"round {r} {graph:8s} {rate:7.1f} sentences/s, mean batch {mean_batch:.1f}", flush=True)
padded, packed = statistics.median(results["default"]), statistics.median(results["packed"])
print(f"medians: padded {padded:.1f}, packed {packed:.1f} sentences/s: packed/padded {packed / padded:.3f}")
