"""Closed-loop load against a running service, and what its metrics and /proc say about each step."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from loadtest.checks import check_encode

try:  # the load generator shares the cores with the service: the lighter event loop leaves it more
    from uvloop import run as run_loop
except ImportError:  # pragma: no cover - Windows
    run_loop = asyncio.run

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



def scrape(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in re.findall(r"^(attnserve_[a-z_]+(?:_sum|_count|_total))(?:\{[^}]*\})? (\S+)$", text, re.M):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def closed_loop(url: str, texts: list[str], concurrency: int, seconds: float, dims: int,
                      per_request: int = 1) -> tuple:
    """Each client sends `per_request` consecutive corpus texts per request, the next as soon as one answers."""
    latencies: list[float] = []
    tokens = errors = 0
    # bodies encoded once, answers parsed with orjson: the load generator shares the cores with the service
    groups = [[texts[(i + j) % len(texts)] for j in range(per_request)] for i in range(len(texts))]
    bodies = [orjson.dumps({"texts": group, "truncate": True}) for group in groups]
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def worker(k: int) -> None:
            nonlocal tokens, errors
            i = k * 7919
            while time.perf_counter() < stop_at:
                data = bodies[i % len(bodies)]
                i += 1
                started = time.perf_counter()
                async with http.post(f"{url}/encode", data=data, headers=JSON) as r:
                    body = orjson.loads(await r.read())
                    if r.status != 200 or check_encode(body, per_request, dims):
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


def step(url: str, mode: str, texts: list[str], c: int, seconds: float, dims: int, pid: int | None,
         per_request: int = 1) -> Step:
    """One closed-loop step against a running service, with its metrics and, when local, its CPU by thread."""
    run_loop(closed_loop(url, texts, c, min(1.0, seconds), dims, per_request))  # warm the connections, the queue
    before = scrape(http_get(f"{url}/metrics"))
    cpu_before = thread_cpu_s(pid) if pid else (0.0, 0.0)
    own_before = time.process_time()
    latencies, tokens, errors, elapsed = run_loop(closed_loop(url, texts, c, seconds, dims, per_request))
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
        sequences_per_s=len(latencies) * per_request / elapsed, requests_per_s=len(latencies) / elapsed,
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
