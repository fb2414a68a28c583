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
import functools
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
import orjson

try:  # the load generator shares the cores with the service: the lighter event loop leaves it more
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover - Windows
    run_loop = asyncio.run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import check_encode, load_corpus

CONCURRENCY = (1, 4, 16, 64, 256)
JSON = {"Content-Type": "application/json"}


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


class Ceiling:
    """The bundle's own graphs for batches (the padded optimized or default graph, and the packed one), one
    ONNX Runtime session on all cores, no HTTP: batches grouped by length. The best graph and size is the
    ceiling."""

    def __init__(self, bundle: Path, texts: list[str]) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((bundle / "config.json").read_text())
        graphs = config["graphs"]
        self.padded = graphs.get("optimized", graphs["default"])["file"]
        self.packed: str | None = graphs["packed"]["file"] if "packed" in graphs else None
        self.paths = {name: bundle / name for name in (self.padded, self.packed) if name}
        # the graph the service's workers run batches on (packed on a CPU when the bundle has it)
        self.service_graph = self.packed or self.padded
        self.sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                         for name, path in self.paths.items()}
        tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(config["serving"]["max_length"])
        self.ids = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)

    def _run(self, batch: list[list[int]], graph: str | None = None, session=None) -> None:
        graph = graph or self.padded
        session = session or self.sessions[graph]
        if graph == self.packed:
            from service.packing import pack

            session.run(None, pack([np.asarray(row, dtype=np.int64) for row in batch])[0])
            return
        width = max(map(len, batch))
        arr = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(arr)
        for i, row in enumerate(batch):
            arr[i, : len(row)] = row
            mask[i, : len(row)] = 1
        session.run(None, {"input_ids": arr, "attention_mask": mask})

    @functools.cached_property
    def _one_thread_session(self):  # the service's layout: one thread per call, made once
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(self.paths[self.service_graph]), options, providers=["CPUExecutionProvider"])

    def _batches(self, size: int) -> list[list[list[int]]]:
        return [self.ids[i : i + size] for i in range(0, len(self.ids), size)]

    def rate(self, size: int, budget_s: float, graph: str | None = None) -> float:
        """Sentences/s over length-sorted batches of ``size``, taken in a random order."""
        batches = self._batches(size)
        self._run(batches[len(batches) // 2], graph)  # warm
        order = np.random.default_rng(size).permutation(len(batches))
        done, started = 0, time.perf_counter()
        for k in order:
            self._run(batches[k], graph)
            done += len(batches[k])
            if time.perf_counter() - started > budget_s:
                break
        return done / (time.perf_counter() - started)

    def rate_in_workers(self, size: int, budget_s: float, workers: int = 2) -> float:
        """Sentences/s with the service's CPU layout: ``workers`` threads sharing one 1-thread session of its
        batch graph, each running its own length-sorted batches. Batch 1 against the best size bounds what
        batching can add."""
        import threading

        session = self._one_thread_session
        batches = self._batches(size)
        order = np.random.default_rng(size).permutation(len(batches))
        done = [0] * workers
        stop_at = time.perf_counter() + budget_s

        def work(w: int) -> None:
            k = w * len(order) // workers
            while time.perf_counter() < stop_at:
                batch = batches[order[k % len(order)]]
                self._run(batch, self.service_graph, session)
                done[w] += len(batch)
                k += 1

        self._run(batches[0], self.service_graph, session)  # warm
        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - started)

    def single_p50_ms(self, count: int = 200) -> float:
        """Median time of one sentence alone, over sentences spread across the length range."""
        times = []
        for row in self.ids[:: max(1, len(self.ids) // count)]:
            started = time.perf_counter()
            self._run([row])
            times.append(time.perf_counter() - started)
        return 1000 * float(np.median(times))


# ---------------------------------------------------------------- the service under load


def scrape(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in re.findall(r"^(attnserve_[a-z_]+(?:_sum|_count|_total))(?:\{[^}]*\})? (\S+)$", text, re.M):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def closed_loop(url: str, texts: list[str], concurrency: int, seconds: float, dims: int) -> tuple:
    latencies: list[float] = []
    tokens = errors = 0
    # bodies encoded once, answers parsed with orjson: the load generator shares the cores with the service
    bodies = {text: orjson.dumps({"texts": [text], "truncate": True}) for text in texts}
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
                async with http.post(f"{url}/encode", data=bodies[text], headers=JSON) as r:
                    body = orjson.loads(await r.read())
                    if r.status != 200 or check_encode(body, 1, dims):
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)
                tokens += body["usage"]["prompt_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return latencies, tokens, errors, time.perf_counter() - started


def http_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds so far of a local process: its main thread (the event loop) and all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = rest = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            if task.name == str(pid):
                main += cpu
            else:
                rest += cpu
    return main, rest


def step(url: str, mode: str, texts: list[str], c: int, seconds: float, dims: int, pid: int | None) -> Step:
    """One closed-loop step against a running service, with its metrics and, when local, its CPU by thread."""
    run_loop(closed_loop(url, texts, c, min(1.0, seconds), dims))  # warm the connections and the queue
    before = scrape(http_get(f"{url}/metrics"))
    cpu_before = thread_cpu_s(pid) if pid else (0.0, 0.0)
    own_before = time.process_time()
    latencies, tokens, errors, elapsed = run_loop(closed_loop(url, texts, c, seconds, dims))
    own = time.process_time() - own_before
    cpu_after = thread_cpu_s(pid) if pid else (0.0, 0.0)
    after = scrape(http_get(f"{url}/metrics"))
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    n = max(len(latencies), 1)
    batches = max(d.get("attnserve_batch_size_count", 0), 1)
    enc = max(d.get("attnserve_request_duration_seconds_count", 0), 1)
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    breakdown = {
        "request": 1000 * d.get("attnserve_request_duration_seconds_sum", 0) / enc,
        "tokenize": 1000 * d.get("attnserve_tokenize_duration_seconds_sum", 0) / n,
        "queue": 1000 * d.get("attnserve_queue_duration_seconds_sum", 0) / n,
        "inference (per batch)": 1000 * d.get("attnserve_inference_duration_seconds_sum", 0) / batches,
        "serialize": 1000 * d.get("attnserve_serialize_duration_seconds_sum", 0) / n,
    }
    if pid:  # CPU milliseconds per request: where the two cores went
        breakdown |= {
            "cpu: event loop": 1000 * (cpu_after[0] - cpu_before[0]) / n,
            "cpu: inference and other threads": 1000 * (cpu_after[1] - cpu_before[1]) / n,
            "cpu: load generator": 1000 * own / n,
        }
    s = Step(
        mode=mode, concurrency=c, seconds=elapsed, requests=len(latencies), errors=errors,
        sequences_per_s=len(latencies) / elapsed, requests_per_s=len(latencies) / elapsed,
        tokens_per_s=tokens / elapsed,
        p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)),
        mean_batch_size=d.get("attnserve_batch_size_sum", 0) / batches,
        padding_ratio=d.get("attnserve_batch_tokens_sum", 0) / max(d.get("attnserve_tokens_total", 0), 1),
        breakdown_ms=breakdown,
    )
    print(f"  {mode:9s} c={c:<4d} {s.sequences_per_s:7.1f} seq/s  p50 {s.p50_ms:6.1f}  p99 {s.p99_ms:7.1f} ms"
          f"  batch {s.mean_batch_size:5.1f}  pad {s.padding_ratio:4.2f}  errors {errors}", flush=True)
    return s


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
    proc.kill()
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


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def summarize(rounds: list[dict]) -> dict[str, float]:
    """Per-round ratios, then their medians: each ratio compares figures measured minutes apart at most."""
    out: dict[str, list[float]] = {"share": [], "p99": [], "ratio": [], "over_single": []}
    for r in rounds:
        b64, u64, b1 = r.get("batched_64"), r.get("unbatched_64"), r.get("batched_1")
        if b64:
            out["share"].append(b64["sequences_per_s"] / r["ceiling_sequences_per_s"])
            out["p99"].append(b64["p99_ms"])
        if b64 and u64:
            out["ratio"].append(b64["sequences_per_s"] / u64["sequences_per_s"])
        if b1:
            out["over_single"].append(b1["p50_ms"] - r["ceiling_single_p50_ms"])
    return {k: _median(v) for k, v in out.items() if v}


def write_report(out: Path, result: dict) -> str:
    ceil = result["ceiling"]
    lines = [
        f"# attnserve benchmark ({result['when']})", "",
        f"Bundle `{result['bundle']}`; machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"Python {result['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in result["machine"]["versions"].items()),
        f"Load: closed loop, one short corpus sentence per request, {result['seconds']:g} s per step; "
        "load generator (aiohttp on uvloop) on the same machine, sharing its cores.", "",
        "In-process ceiling (ONNX Runtime, one session on all cores, no HTTP, grouped by length; each of the "
        "bundle's graphs for batches): "
        + "; ".join(f"`{g}`: " + ", ".join(f"batch {k}: {v:.0f}" for k, v in by.items())
                    for g, by in ceil.get("by_graph", {ceil["graph"]: ceil["by_batch_size"]}).items())
        + f" sentences/s; best {ceil['sequences_per_s']:.0f} at batch {ceil['best_batch_size']} on `{ceil['graph']}`; "
        f"one sentence alone: {ceil['single_p50_ms']:.2f} ms (median).", "",
        *([f"The service's own layout, in process ({w['workers']} threads sharing one 1-thread session of "
           f"`{w.get('graph', ceil['graph'])}`, no HTTP): "
           + ", ".join(f"batch {k}: {v:.0f}" for k, v in w["by_batch_size"].items())
           + f" sentences/s; batching itself can add at most "
           f"{max(w['by_batch_size'].values()) / w['by_batch_size'][1]:.2f}x over batch 1 here.", ""]
          if (w := ceil.get("in_workers")) else []),
        "## Sweep", "",
        "| mode | clients | seq/s | tokens/s | p50 ms | p95 ms | p99 ms | mean batch | padding | % ceiling | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        lines.append(
            f"| {s['mode']} | {s['concurrency']} | {s['sequences_per_s']:.0f} | {s['tokens_per_s']:.0f} | "
            f"{s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_batch_size']:.1f} | "
            f"{s['padding_ratio']:.2f} | {100 * s['sequences_per_s'] / ceil['sequences_per_s']:.0f}% | {s['errors']} |"
        )
    cpu = any("cpu: event loop" in s["breakdown_ms"] for s in result["steps"])
    lines += ["", "Where a request's time goes (means per request from the service's metrics, ms)"
              + (" and where the CPU goes (CPU ms per request, from /proc: the server's event loop, its other "
                 "threads, the load generator)" if cpu else "") + ":", "",
              "| mode | clients | request | tokenize | queue | inference per batch | serialize |"
              + (" CPU loop | CPU inference | CPU load gen |" if cpu else ""),
              "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- |" if cpu else "")]
    for s in result["steps"]:
        b = s["breakdown_ms"]
        row = (f"| {s['mode']} | {s['concurrency']} | {b['request']:.2f} | {b['tokenize']:.2f} | "
               f"{b['queue']:.2f} | {b['inference (per batch)']:.2f} | {b['serialize']:.3f} |")
        if cpu:
            row += " | ".join(f" {b.get(k, float('nan')):.2f}" for k in (
                "cpu: event loop", "cpu: inference and other threads", "cpu: load generator")) + " |"
        lines.append(row)
    lines += ["", f"## Targets: {len(result['rounds'])} interleaved rounds", "",
              "Each round measures the ceiling at its best batch size and alone, then the service at 64 clients "
              "(batched and unbatched, both servers up) and at 1 client; ratios are taken within a round and the "
              "targets use their medians, because this shared machine's speed drifts between minutes.", "",
              "| round | ceiling seq/s | batched 64 seq/s | % ceiling | p99 ms | unbatched 64 seq/s "
              "| batched/unbatched | ceiling alone ms | 1 client p50 ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(result["rounds"], 1):
        b64, u64, b1 = r.get("batched_64"), r.get("unbatched_64"), r.get("batched_1")
        cells = [f"{r['ceiling_sequences_per_s']:.0f}",
                 f"{b64['sequences_per_s']:.0f}" if b64 else "-",
                 f"{100 * b64['sequences_per_s'] / r['ceiling_sequences_per_s']:.0f}%" if b64 else "-",
                 f"{b64['p99_ms']:.0f}" if b64 else "-",
                 f"{u64['sequences_per_s']:.0f}" if u64 else "-",
                 f"{b64['sequences_per_s'] / u64['sequences_per_s']:.2f}x" if b64 and u64 else "-",
                 f"{r['ceiling_single_p50_ms']:.2f}",
                 f"{b1['p50_ms']:.2f}" if b1 else "-"]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += ["", "Serving process: " + ", ".join(
        f"{mode}: ready after {v['ready_s']:.2f} s, peak RSS {v['peak_rss_mb']:.0f} MB"
        for mode, v in result["process"].items()), "", "Targets (medians over the rounds):", ""]
    lines += [f"- {'PASS' if ok else 'MISS'}: {text}" for text, ok in result["targets"]]
    table = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(table)
    return table


def targets(result: dict) -> list[tuple[str, bool]]:
    m = summarize(result["rounds"])
    out = []
    if "share" in m:
        out.append((f"batched at 64 clients: {100 * m['share']:.0f}% of the ceiling (>= 85%)", m["share"] >= 0.85))
        out.append((f"batched at 64 clients: p99 {m['p99']:.0f} ms (<= 400 ms)", m["p99"] <= 400))
    if "ratio" in m:
        out.append((f"batched / unbatched at 64 clients: {m['ratio']:.2f}x (>= 1.3x)", m["ratio"] >= 1.3))
    if "over_single" in m:
        out.append((f"1 client p50: {m['over_single']:+.2f} ms over the ceiling's one sentence alone (<= +3 ms)",
                    m["over_single"] <= 3))
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
    if w := result["ceiling"].get("in_workers"):
        by = {int(k): v for k, v in w["by_batch_size"].items()}
        ax1.axhline(max(by.values()), color="grey", linestyle="-.", linewidth=0.8,
                    label=f"{w['workers']} x 1-thread sessions in process, best batch")
        ax1.axhline(by[1], color="grey", linestyle="--", linewidth=0.8,
                    label=f"{w['workers']} x 1-thread sessions in process, batch 1")
    for ax, title in ((ax1, "throughput (sentences/s)"), (ax2, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is ax1 else "upper left")
    ax1.set_ylim(bottom=0)
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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the targets are judged on")
    parser.add_argument("--port", type=int, default=8765, help="batched server; unbatched on the next port")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    texts = load_corpus(paragraphs=False)

    print("in-process ceiling ...", flush=True)
    ceiling = Ceiling(args.model, texts)
    budget = min(args.seconds, 5.0)
    by_graph = {g: {size: ceiling.rate(size, budget, g) for size in (1, 8, 16, 32, 64)} for g in ceiling.paths}
    best_graph, best = max(((g, k) for g, by in by_graph.items() for k in by), key=lambda gk: by_graph[gk[0]][gk[1]])
    by_size = by_graph[best_graph]
    result: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bundle": args.model.name,
        "seconds": args.seconds, "machine": machine(), "steps": [], "rounds": [], "process": {},
        "ceiling": {"graph": best_graph, "by_graph": by_graph, "by_batch_size": by_size, "best_batch_size": best,
                    "sequences_per_s": by_size[best], "single_p50_ms": ceiling.single_p50_ms()},
    }
    print(f"  {by_size[best]:.0f} sentences/s at batch {best} on {best_graph}", flush=True)
    workers = min(2, os.cpu_count() or 1)
    in_workers = {size: ceiling.rate_in_workers(size, budget, workers) for size in (1, 8, 16)}
    result["ceiling"]["in_workers"] = {"workers": workers, "graph": ceiling.service_graph, "by_batch_size": in_workers}
    print(f"  the service's layout ({workers} x 1 thread): "
          + ", ".join(f"batch {k}: {v:.0f}" for k, v in in_workers.items()), flush=True)

    servers: dict[str, tuple[str, subprocess.Popen | None]] = {}
    modes = {"batched": {}, "unbatched": {"ATTNSERVE_MAX_BATCH_SIZE": "1"}}
    try:
        if args.url:
            servers["batched"] = (args.url.rstrip("/"), None)
        else:
            for i, (mode, env) in enumerate(modes.items()):
                proc, ready_s = start_server(args.model, args.port + i, env, args.output / f"server-{mode}.log")
                servers[mode] = (f"http://127.0.0.1:{args.port + i}", proc)
                result["process"][mode] = {"ready_s": ready_s, "settings": env}
        dims = json.loads(http_get(f"{servers['batched'][0]}/v1/models"))["data"][0]["dimensions"]

        def measure(mode: str, c: int, seconds: float) -> dict:
            url, proc = servers[mode]
            return asdict(step(url, mode, texts, c, seconds, dims, proc.pid if proc else None))

        print("sweep ...", flush=True)
        for mode in servers:
            result["steps"] += [measure(mode, c, args.seconds) for c in concurrency]
        for i in range(args.rounds):
            print(f"round {i + 1} ...", flush=True)
            r = {"ceiling_sequences_per_s": ceiling.rate(best, budget, best_graph),
                 "ceiling_single_p50_ms": ceiling.single_p50_ms()}
            print(f"  ceiling   {r['ceiling_sequences_per_s']:7.1f} seq/s  alone {r['ceiling_single_p50_ms']:.2f} ms")
            for mode in servers:
                r[f"{mode}_64"] = measure(mode, 64, args.seconds)
            r["batched_1"] = measure("batched", 1, min(args.seconds, 5.0))
            result["rounds"].append(r)
        for mode, (_, proc) in servers.items():
            if proc is not None:
                result["process"][mode] |= rss_mb(proc.pid)
    finally:
        for _, proc in servers.values():
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    result["targets"] = targets(result)
    (args.output / "bench.json").write_text(json.dumps(result, indent=2))
    plot(args.output, result)
    print(write_report(args.output, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
