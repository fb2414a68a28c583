"""Rerank-like pairs (a corpus sentence as the query, 8 others as documents) batched in process as the service
batches them, against length-sorted batches of 32: the padded graph at padding limit 1.1 and the packed graph at
1.5, one thread. MiniLM's embedding graphs stand in for the cross-encoder (its head costs nothing).

    PYTHONPATH=. python docs/measurements/2026-11-26-rerank/batching_in_process.py build/minilm
"""

import random
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from bundle import load_bundle
from service.batcher import Pending, select_batch
from service.runtime import Runtime
from service.settings import Settings

bundle = Path(sys.argv[1])
texts = Path("loadtest/corpus.txt").read_text().splitlines()
tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
tokenizer.no_padding()
tokenizer.enable_truncation(256)
rng = random.Random(0)
requests = []
for _ in range(64 * 3):
    query = texts[rng.randrange(len(texts))]
    documents = [texts[rng.randrange(len(texts))] for _ in range(8)]
    requests.append([np.asarray(e.ids, np.int64) for e in tokenizer.encode_batch([(query, d) for d in documents])])
pairs = [p for r in requests for p in r]
print(f"{len(pairs)} pairs, {np.mean([len(p) for p in pairs]):.1f} tokens on average")


def runtime(graph: str) -> Runtime:
    return Runtime(load_bundle(bundle), Settings(model=bundle, warmup=False, graph=graph, inference_workers=1,
                                                 intra_op_threads=1, lone_batch_all_cores=False))


def pending(request: list[np.ndarray]) -> list[Pending]:
    return [Pending(p, False, None, None, 0.0) for p in request]  # type: ignore[arg-type]  # never resolved here


def service_like(rt: Runtime, ratio: float, window: int = 16, budget_s: float = 12.0) -> tuple[float, float]:
    """A closed loop: 64 requests' pairs wait; each 8 pairs done, the next request joins at the back."""
    queue = [p for r in requests[:64] for p in pending(r)]
    joined, done, sizes, started = 64, 0, [], time.perf_counter()
    while queue and time.perf_counter() - started < budget_s:
        batch = select_batch(queue, 32, 16384, ratio, window)
        taken = {id(p) for p in batch}
        queue = [p for p in queue if id(p) not in taken]
        rt.run([p.ids for p in batch], False)
        done += len(batch)
        sizes.append(len(batch))
        while done >= 8 * (joined - 63) and joined < len(requests):
            queue += pending(requests[joined])
            joined += 1
    return done / (time.perf_counter() - started), float(np.mean(sizes))


def sorted_batches(rt: Runtime) -> float:
    ordered, started = sorted(pairs, key=len), time.perf_counter()
    for i in range(0, len(ordered), 32):
        rt.run(ordered[i : i + 32], False)
    return len(ordered) / (time.perf_counter() - started)


padded, packed = runtime("auto"), runtime("packed")
padded.packed_session = None  # the padded (optimized) graph for every batch, as a task bundle runs
for round_ in range(2):
    print(f"round {round_}: sorted batches of 32, padded: {sorted_batches(padded):.1f} pairs/s")
    for name, rt, ratio in (("padded", padded, 1.1), ("packed", packed, 1.5)):
        rate, size = service_like(rt, ratio)
        print(f"  service-like, {name}, {ratio}: {rate:.1f} pairs/s (mean batch {size:.1f})")
