"""Steady traffic in process: fused bf16, 2 streams x 1 thread, a long stream of new batches (corpus sentences
grouped by length, 8-32 a batch); tokens/s over the last 2/3. Variants of the packed shapes.

    PYTHONPATH=. .venv/bin/python docs/measurements/2026-11-27-amx-rows/steady.py BATCHES ROUNDS VARIANT ...
"""

import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

from loadtest.checks import load_corpus


def rss():
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def pack2(sequences, rows_step, width_step, tokens_step, extra_row):
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    b, s, t = len(lengths), int(lengths.max()), int(offsets[-1])
    rows = -(-(b + extra_row) // rows_step) * rows_step
    width = -(-s // width_step) * width_step
    tokens = -(-t // tokens_step) * tokens_step
    lr = np.zeros(rows, dtype=np.int64)
    lr[:b] = lengths
    column = np.arange(width, dtype=np.int64)[None, :]
    mask = column < lr[:, None]
    starts = np.zeros(rows, dtype=np.int64)
    starts[:b] = offsets[:-1]
    extra = tokens - t
    return {
        "input_ids": np.concatenate([*sequences, np.zeros(extra, dtype=np.int64)]),
        "positions": np.concatenate(
            [np.arange(t, dtype=np.int64) - np.repeat(offsets[:-1], lengths), np.zeros(extra, dtype=np.int64)]
        ),
        "slots": np.where(mask, starts[:, None] + column, 0),
        "keep": np.concatenate([np.flatnonzero(mask), np.full(extra, b * width if extra_row else 0, dtype=np.int64)]),
        "attention_mask": mask.astype(np.int64),
    }


VARIANTS = {  # name: (rows_step, width_step, tokens_step, extra_row, cache capacity or None)
    "now": (2, 8, 32, 1, None),
    "norow": (2, 8, 32, 0, None),
    "norow-w4": (2, 4, 32, 0, None),
    "norow-r1": (1, 8, 32, 0, None),
    "r1-c20k": (1, 8, 32, 0, 20000),
    "r1-c50k": (1, 8, 32, 0, 50000),
    "r1-w4-c20k": (1, 4, 32, 0, 20000),
    "r1-t16-c20k": (1, 8, 16, 0, 20000),
    "norow-cache20k": (2, 8, 32, 0, 20000),
    "norow-t16": (2, 8, 16, 0, None),
}


def corpus_batches(count: int) -> list[list[np.ndarray]]:
    """``count`` batches of 8-32 corpus sentences of similar length (the corpus sorted by length, windows of it)."""
    tok = Tokenizer.from_file("build/minilm/tokenizer.json")
    tok.no_truncation()
    tok.no_padding()
    ids = [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(load_corpus(paragraphs=False))]
    ids.sort(key=len)
    rng = random.Random(1)
    batches = []
    for _ in range(count):
        n = rng.randint(8, 32)
        st = rng.randint(0, len(ids) - n)
        batches.append(ids[st : st + n])
    return batches


def main() -> None:
    batches = corpus_batches(int(sys.argv[1]))
    core = ov.Core()
    model = core.read_model("build/minilm/model_packed.onnx")
    names = sys.argv[3:]
    for rnd in range(int(sys.argv[2])):
        for name in names if rnd % 2 == 0 else names[::-1]:
            rs, ws, ts, er, cap = VARIANTS[name]
            opts = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 2} | (
                {"CPU_RUNTIME_CACHE_CAPACITY": cap} if cap else {}
            )
            c = core.compile_model(model, "CPU", opts)
            reqs = [c.create_infer_request() for _ in range(2)]
            feeds = [pack2(b, rs, ws, ts, er) for b in batches]
            third = len(feeds) // 3
            real = sum(sum(map(len, b)) for b in batches[third:])

            def work(r, part):
                for f in part:
                    r.infer(f)

            for part in (feeds[:third], feeds[third:]):
                t0 = time.perf_counter()
                th = [threading.Thread(target=work, args=(reqs[k], part[k::2])) for k in range(2)]
                [x.start() for x in th]
                [x.join() for x in th]
            rate = real / (time.perf_counter() - t0)
            shapes = len({(f["slots"].shape, f["input_ids"].shape) for f in feeds})
            attn = sum(f["slots"].size for f in feeds) / sum(sum(map(len, b)) for b in batches)
            print(
                f"round {rnd} {name:15s} shapes {shapes:4d} attn slots/token {attn:.2f} steady {rate:6.0f} tokens/s "
                f"RSS {rss()} MB",
                flush=True,
            )
            del reqs, c


if __name__ == "__main__":
    main()
