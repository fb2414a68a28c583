"""Benchmark: attnserve with batching, without batching (max_batch_size 1), and the in-process ONNX Runtime
ceiling on the same sentences; closed-loop load at several concurrencies. Writes bench.md, bench.json and
bench.png to the output folder and prints the table.

    python loadtest/bench.py --model build/minilm --output results/bench
    python loadtest/bench.py --url http://127.0.0.1:8000 --output results/bench   # an already running service
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import aiohttp
import numpy as np

try:  # the load generator shares the cores with the service: the lighter event loop leaves it more
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover - Windows
    run_loop = asyncio.run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check_encode, load_corpus

CONCURRENCY = (1, 4, 16, 64, 256)


@dataclass
class Step:
    mode: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    sequences_per_s: float
    requests_per_s: float
    tokens_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch_size: float
    padding_ratio: float
    # mean per request, from the service's own metrics: where the time goes
    breakdown_ms: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- the in-process ceiling


def ceiling(bundle: Path, texts: list[str], budget_s: float) -> dict:
    """The service's own graph in one ONNX Runtime session, no HTTP: batches grouped by length."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    config = json.loads((bundle / "config.json").read_text())
    graph = config["graphs"].get("optimized", config["graphs"]["default"])["file"]
    session = ort.InferenceSession(str(bundle / graph), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(config["serving"]["max_length"])
    ids = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)

    def run(batch: list[list[int]]) -> None:
        width = max(map(len, batch))
        arr = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(arr)
        for i, row in enumerate(batch):
            arr[i, : len(row)] = row
            mask[i, : len(row)] = 1
        session.run(None, {"input_ids": arr, "attention_mask": mask})

    results = {}
    for size in (1, 8, 16, 32, 64):
        batches = [ids[i : i + size] for i in range(0, len(ids), size)]
        run(batches[len(batches) // 2])  # warm
        order = np.random.default_rng(0).permutation(len(batches))
        done, started = 0, time.perf_counter()
        for k in order:
            run(batches[k])
            done += len(batches[k])
            if time.perf_counter() - started > budget_s:
                break
        results[size] = done / (time.perf_counter() - started)
    single = []
    for row in ids[:: max(1, len(ids) // 200)]:
        t = time.perf_counter()
        run([row])
        single.append(time.perf_counter() - t)
    best = max(results, key=results.get)
    return {"graph": graph, "by_batch_size": results, "best_batch_size": best,
            "sequences_per_s": results[best], "single_p50_ms": 1000 * float(np.median(single))}


# ---------------------------------------------------------------- the service under load


def scrape(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in re.findall(r"^(attnserve_[a-z_]+(?:_sum|_count|_total))(?:\{[^}]*\})? (\S+)$", text, re.M):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def closed_loop(url: str, texts: list[str], concurrency: int, seconds: float, dims: int) -> tuple:
    latencies: list[float] = []
    tokens = errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def worker(k: int) -> None:
            nonlocal tokens, errors
            i = k * 7919
            while time.perf_counter() < stop_at:
                text = texts[i % len(texts)]
                i += 1
                started = time.perf_counter()
                async with http.post(f"{url}/encode", json={"texts": [text], "truncate": True}) as r:
                    body = await r.json(content_type=None)
                    if r.status != 200 or check_encode(body, 1, dims):
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)
                tokens += body["usage"]["prompt_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return latencies, tokens, errors, time.perf_counter() - started


def run_steps(url: str, mode: str, texts: list[str], concurrency: tuple[int, ...], seconds: float) -> list[Step]:
    import urllib.request

    def get(path: str) -> str:
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as r:
            return r.read().decode()

    dims = json.loads(get("/v1/models"))["data"][0]["dimensions"]
    steps = []
    for c in concurrency:
        run_loop(closed_loop(url, texts, c, 1.0, dims))  # warm the connections and the queue
        before = scrape(get("/metrics"))
        latencies, tokens, errors, elapsed = run_loop(closed_loop(url, texts, c, seconds, dims))
        after = scrape(get("/metrics"))
        d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        n = max(len(latencies), 1)
        batches = max(d.get("attnserve_batch_size_count", 0), 1)
        enc = max(d.get("attnserve_request_duration_seconds_count", 0), 1)
        lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
        steps.append(Step(
            mode=mode, concurrency=c, seconds=elapsed, requests=len(latencies), errors=errors,
            sequences_per_s=len(latencies) / elapsed, requests_per_s=len(latencies) / elapsed,
            tokens_per_s=tokens / elapsed,
            p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
            p99_ms=float(np.percentile(lat, 99)),
            mean_batch_size=d.get("attnserve_batch_size_sum", 0) / batches,
            padding_ratio=d.get("attnserve_batch_tokens_sum", 0) / max(d.get("attnserve_tokens_total", 0), 1),
            breakdown_ms={
                "request": 1000 * d.get("attnserve_request_duration_seconds_sum", 0) / enc,
                "tokenize": 1000 * d.get("attnserve_tokenize_duration_seconds_sum", 0) / n,
                "queue": 1000 * d.get("attnserve_queue_duration_seconds_sum", 0) / n,
                "inference (per batch)": 1000 * d.get("attnserve_inference_duration_seconds_sum", 0) / batches,
                "serialize": 1000 * d.get("attnserve_serialize_duration_seconds_sum", 0) / n,
            },
        ))
        s = steps[-1]
        print(f"  {mode:9s} c={c:<4d} {s.sequences_per_s:7.1f} seq/s  p50 {s.p50_ms:6.1f}  p99 {s.p99_ms:7.1f} ms"
              f"  batch {s.mean_batch_size:5.1f}  pad {s.padding_ratio:4.2f}  errors {errors}", flush=True)
    return steps


def start_server(bundle: Path, port: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--model", str(bundle), "--port", str(port),
         "--log-level", "warning"],
        env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    import urllib.request

    while time.monotonic() - started < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server not ready after 120 s")


def rss_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024  # noqa: E731
    return {"rss_mb": get("VmRSS"), "peak_rss_mb": get("VmHWM")}


# ---------------------------------------------------------------- report


def machine() -> dict:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else cpu
    versions = {}
    for dist in ("attnserve", "onnxruntime-gpu", "onnxruntime", "fastapi", "uvicorn", "tokenizers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def write_report(out: Path, result: dict) -> str:
    ceil = result["ceiling"]
    lines = [
        f"# attnserve benchmark ({result['when']})", "",
        f"Bundle `{result['bundle']}`; machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"Python {result['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in result["machine"]["versions"].items()),
        f"Load: closed loop, one short corpus sentence per request, {result['seconds']:g} s per step; "
        "load generator (aiohttp) on the same machine.", "",
        f"In-process ceiling (ONNX Runtime on `{ceil['graph']}`, no HTTP, grouped by length): "
        + ", ".join(f"batch {k}: {v:.0f}" for k, v in ceil["by_batch_size"].items())
        + f" sentences/s; best {ceil['sequences_per_s']:.0f} at batch {ceil['best_batch_size']}; "
        f"one sentence alone: {ceil['single_p50_ms']:.2f} ms (median).", "",
        "| mode | clients | seq/s | tokens/s | p50 ms | p95 ms | p99 ms | mean batch | padding | % ceiling | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        lines.append(
            f"| {s['mode']} | {s['concurrency']} | {s['sequences_per_s']:.0f} | {s['tokens_per_s']:.0f} | "
            f"{s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_batch_size']:.1f} | "
            f"{s['padding_ratio']:.2f} | {100 * s['sequences_per_s'] / ceil['sequences_per_s']:.0f}% | {s['errors']} |"
        )
    lines += ["", "Where a request's time goes (means from the service's metrics, ms):", "",
              "| mode | clients | request | tokenize | queue | inference per batch | serialize |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in result["steps"]:
        b = s["breakdown_ms"]
        lines.append(f"| {s['mode']} | {s['concurrency']} | {b['request']:.2f} | {b['tokenize']:.2f} | "
                     f"{b['queue']:.2f} | {b['inference (per batch)']:.2f} | {b['serialize']:.3f} |")
    lines += ["", "Serving process: " + ", ".join(
        f"{mode}: ready after {v['ready_s']:.2f} s, peak RSS {v['peak_rss_mb']:.0f} MB"
        for mode, v in result["process"].items()), "", "Targets:", ""]
    lines += [f"- {'PASS' if ok else 'MISS'}: {text}" for text, ok in result["targets"]]
    table = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(table)
    return table


def targets(result: dict) -> list[tuple[str, bool]]:
    ceil = result["ceiling"]
    by = {(s["mode"], s["concurrency"]): s for s in result["steps"]}
    out = []
    b64, u64 = by.get(("batched", 64)), by.get(("unbatched", 64))
    if b64:
        share = b64["sequences_per_s"] / ceil["sequences_per_s"]
        out.append((f"batched at 64 clients: {100 * share:.0f}% of the ceiling (>= 85%)", share >= 0.85))
        out.append((f"batched at 64 clients: p99 {b64['p99_ms']:.0f} ms (<= 400 ms)", b64["p99_ms"] <= 400))
    if b64 and u64:
        ratio = b64["sequences_per_s"] / u64["sequences_per_s"]
        out.append((f"batched / unbatched at 64 clients: {ratio:.2f}x (>= 1.3x)", ratio >= 1.3))
    b1 = by.get(("batched", 1))
    if b1:
        limit = ceil["single_p50_ms"] + 3
        out.append((f"1 client p50 {b1['p50_ms']:.2f} ms (<= ceiling single {ceil['single_p50_ms']:.2f} + 3 ms)",
                    b1["p50_ms"] <= limit))
    for mode, v in result["process"].items():
        out.append((f"{mode}: peak RSS {v['peak_rss_mb']:.0f} MB (<= 600 MB)", v["peak_rss_mb"] <= 600))
        out.append((f"{mode}: ready after {v['ready_s']:.2f} s (<= 5 s)", v["ready_s"] <= 5))
    return out


def plot(out: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("batched", "o-"), ("unbatched", "s--")):
        steps = [s for s in result["steps"] if s["mode"] == mode]
        if not steps:
            continue
        xs = [s["concurrency"] for s in steps]
        ax1.plot(xs, [s["sequences_per_s"] for s in steps], style, label=mode)
        ax2.plot(xs, [s["p99_ms"] for s in steps], style, label=mode)
    ax1.axhline(result["ceiling"]["sequences_per_s"], color="grey", linestyle=":",
                label=f"ceiling (ORT, batch {result['ceiling']['best_batch_size']})")
    for ax, title in ((ax1, "throughput (sentences/s)"), (ax2, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax2.set_yscale("log")
    fig.suptitle(f"attnserve, {result['bundle']}, {result['machine']['cores']} CPU cores")
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/minilm"), help="bundle to serve and measure")
    parser.add_argument("--url", help="measure this running service instead (batched mode only)")
    parser.add_argument("--output", type=Path, default=Path("results/bench"))
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    texts = load_corpus(paragraphs=False)

    print("in-process ceiling ...", flush=True)
    result: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bundle": args.model.name,
                    "seconds": args.seconds, "machine": machine(), "steps": [], "process": {},
                    "ceiling": ceiling(args.model, texts, budget_s=min(args.seconds, 8.0))}
    print(f"  {result['ceiling']['sequences_per_s']:.0f} sentences/s", flush=True)
    modes = [("batched", {})] if args.url else [("batched", {}), ("unbatched", {"ATTNSERVE_MAX_BATCH_SIZE": "1"})]
    for mode, env in modes:
        if args.url:
            result["steps"] += [asdict(s) for s in run_steps(args.url, mode, texts, concurrency, args.seconds)]
            continue
        proc, ready_s = start_server(args.model, args.port, env, args.output / f"server-{mode}.log")
        try:
            url = f"http://127.0.0.1:{args.port}"
            result["steps"] += [asdict(s) for s in run_steps(url, mode, texts, concurrency, args.seconds)]
            result["process"][mode] = {"ready_s": ready_s, **rss_mb(proc.pid), "settings": env}
        finally:
            proc.terminate()
            proc.wait(30)
    result["targets"] = targets(result)
    (args.output / "bench.json").write_text(json.dumps(result, indent=2))
    plot(args.output, result)
    print(write_report(args.output, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
