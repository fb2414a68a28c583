"""OpenVINO's session for a batch alone (one stream, two threads, f32): does a compile hint change the latency of
one sentence? Every corpus sentence's shape warmed first, then 3 rounds of 200 sentences; medians per sentence.

    PYTHONPATH=. python docs/measurements/2026-11-26-packed-ov/lone_hints.py > lone_hints.log
"""

import time
from pathlib import Path

import numpy as np
import openvino

from bundle import load_bundle
from service.openvino_session import OpenVinoGraphs
from service.tokenize import TextTokenizer

folder = Path("build/minilm")
model = OpenVinoGraphs(load_bundle(folder)).model("default")
texts = Path("loadtest/corpus.txt").read_text().splitlines()[:200]
sequences = [e.ids for e in TextTokenizer(folder / "tokenizer.json", 256).encode(texts, True)]
service = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1}
configs = {"service": service, "+LATENCY hint": {**service, "PERFORMANCE_HINT": "LATENCY"},
           "+pinning": {**service, "ENABLE_CPU_PINNING": True},
           "+no hyperthreading": {**service, "ENABLE_HYPER_THREADING": False}}
core = openvino.Core()
requests = {name: core.compile_model(model, "CPU", c).create_infer_request() for name, c in configs.items()}


def run(request, ids: np.ndarray) -> float:
    started = time.perf_counter()
    request.infer({"input_ids": ids[None, :], "attention_mask": np.ones((1, len(ids)), np.int64)})
    return time.perf_counter() - started


for request in requests.values():
    for ids in sequences:
        run(request, ids)
medians: dict[str, list[float]] = {name: [] for name in requests}
for _ in range(3):
    for name, request in requests.items():
        medians[name].append(float(np.median([run(request, ids) for ids in sequences])) * 1e3)
for name, values in medians.items():
    print(f"{name:20s} median ms per sentence, 3 rounds: {', '.join(f'{v:.2f}' for v in values)}")
