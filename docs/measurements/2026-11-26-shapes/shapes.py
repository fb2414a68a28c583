"""What a new input shape costs OpenVINO's CPU plugin: the first call of each (batch, width) against its best
repeat, on the service's own OpenVINO session (one stream, one thread, like one inference worker).

    PYTHONPATH=. python docs/measurements/2026-11-26-shapes/shapes.py build/minilm fp32 [300] > shapes-fp32.log
"""

import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bundle import load_bundle
from service.openvino_session import OpenVinoGraphs
from service.precision import cpu_info

bundle, precision = load_bundle(Path(sys.argv[1])), sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
session = OpenVinoGraphs(bundle).session("default", threads=1, precision=precision, streams=1)
rng = random.Random(0)
shapes = [(rng.randint(1, 32), rng.randint(8, 64)) for _ in range(count)]  # the service's usual batches


def call(batch: int, width: int) -> float:
    ids, mask = np.full((batch, width), 1000, np.int64), np.ones((batch, width), np.int64)
    started = time.perf_counter()
    session.run(None, {"input_ids": ids, "attention_mask": mask})
    return time.perf_counter() - started


call(4, 16)
first: dict[tuple[int, int], float] = {}
repeats: dict[tuple[int, int], list[float]] = {}
for shape in shapes + shapes:  # the second pass: every shape seen before
    if shape in first:
        repeats.setdefault(shape, []).append(call(*shape))
    else:
        first[shape] = call(*shape)
extra = [first[s] - min(repeats[s]) for s in first]
print(f"cpu: {cpu_info()[0]} | precision {precision} | {len(first)} distinct shapes")
print(f"first call's extra: median {statistics.median(extra) * 1e3:.2f} ms, mean {statistics.mean(extra) * 1e3:.2f} ms")
print(f"all first calls {sum(first.values()):.2f} s, their best repeats {sum(min(repeats[s]) for s in first):.2f} s")
