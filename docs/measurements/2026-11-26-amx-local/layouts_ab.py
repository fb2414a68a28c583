"""Batching layouts for one precision in one process, on the service's own runtime and batch selection (as
2026-11-26-packed-ov/graphs_ab.py, with the layouts named on the command line): WAITING sentences always waiting
(that many clients without HTTP), the plan's workers taking batches with `select_batch`, interleaved rounds.
`select=nearest` in a layout takes the anchor plus the window's sequences nearest to it in length instead.

    PYTHONPATH=. python docs/measurements/2026-11-26-amx-local/layouts_ab.py build/minilm bf16 6 3 64 \
        'now=graph=default' 'packed=graph=packed' 'one=graph=packed,inference_workers=1,intra_op_threads=2'
    PYTHONPATH=. python docs/measurements/2026-11-26-amx-local/layouts_ab.py build/minilm bf16 5 3 128 'now=' \
        'near=select=nearest'
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
WAITING = int(sys.argv[5]) if len(sys.argv) > 5 else 64
NAMED = sys.argv[6:]


@dataclass(eq=False)
class Waiting:
    ids: np.ndarray
    attentions: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def nearest(pending, max_batch_size, max_batch_tokens, max_padding_ratio, window=None):
    """The anchor plus the window's sequences nearest to it in length, under the same limits."""
    anchor = pending[0]
    candidates = sorted(pending[1: window or max_batch_size], key=lambda p: abs(len(p) - len(anchor)))
    return select_batch([anchor, *candidates], max_batch_size, max_batch_tokens, max_padding_ratio, len(candidates) + 1)


CHOICE = {}


def throughput(runtime: Runtime, settings: Settings, sentences: list[np.ndarray], seed: int) -> tuple[float, float]:
    """Sentences/s and mean batch over ``seconds``, the plan's workers each taking the next batch from one queue."""
    rng, lock, plan = random.Random(seed), threading.Lock(), runtime.plan
    queue = [Waiting(rng.choice(sentences)) for _ in range(WAITING)]
    done, batches, stop = [0], [0], time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop:
            with lock:
                choose = CHOICE.get(id(runtime), select_batch)
                batch = choose(queue, settings.max_batch_size, settings.max_batch_tokens, plan.padding_ratio,
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


def parse(spec: str) -> tuple[str, dict]:
    name, _, pairs = spec.partition("=")
    out: dict = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        out[key] = value
    return name, out


layouts = {}
for name, extra in map(parse, NAMED):
    choose = extra.pop("select", None)
    settings = Settings(model=folder, engine="openvino", precision=precision, **extra)
    layouts[name] = (Runtime(bundle, settings), settings)
    if choose == "nearest":
        CHOICE[id(layouts[name][0])] = nearest
    layouts[name][0].warmup(settings.max_batch_size)
print(f"cpu: {cpu_info()[0]} | OpenVINO {precision} | {seconds:g} s x {rounds} rounds | {WAITING} waiting")
for name, (runtime, settings) in layouts.items():
    print(f"{name}: {runtime.plan} max_batch_size={settings.max_batch_size}")
results: dict[str, list[float]] = {name: [] for name in layouts}
for r in range(rounds):
    for name in (list(layouts) if r % 2 == 0 else list(reversed(layouts))):
        rate, mean_batch = throughput(*layouts[name], sentences, seed=r)
        results[name].append(rate)
        print(f"round {r} {name:10s} {rate:7.1f} sentences/s, mean batch {mean_batch:.1f}", flush=True)
base = statistics.median(results[next(iter(layouts))])
for name, rates in results.items():
    rate = statistics.median(rates)
    print(f"median {name:10s} {rate:7.1f} sentences/s ({rate / base:.3f}x the first)")
