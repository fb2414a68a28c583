"""A real uvicorn server on 127.0.0.1: concurrency, overload, timeouts and clients that go away."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Server, running_server

WORDS = (
    "attention", "encoder", "token", "vector", "batch", "queue", "latency", "cosine", "model", "layer", "head",
    "softmax", "query", "key", "value", "Zürich", "naïve", "東京", "café", "the", "a", "of", "and", "to", "in",
)


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples with that exact name (labels ignored)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


@pytest.fixture(scope="module")
def minilm_server(minilm_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(minilm_bundle, tmp_path_factory.mktemp("logs") / "server.log") as server:
        yield server


def test_concurrent_requests_each_get_their_own_result(minilm_server: Server) -> None:
    rng = random.Random(7)
    texts = [f"{i} " + " ".join(rng.choices(WORDS, k=rng.randint(1, 60))) for i in range(200)]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(base_url=minilm_server.url, limits=limits, timeout=120) as client:
            return await asyncio.gather(*(client.post("/encode", json={"texts": [t]}) for t in texts))

    before = httpx.get(f"{minilm_server.url}/metrics").text
    together = asyncio.run(burst())
    after = httpx.get(f"{minilm_server.url}/metrics").text
    assert [r.status_code for r in together] == [200] * len(texts)

    with httpx.Client(base_url=minilm_server.url, timeout=60) as client:
        for text, response in zip(texts, together, strict=True):
            alone = client.post("/encode", json={"texts": [text]}).json()
            np.testing.assert_allclose(response.json()["embeddings"][0], alone["embeddings"][0], atol=2e-5)
            assert response.json()["tokens"] == alone["tokens"]

    batches = metric(after, "attnserve_batch_size_count") - metric(before, "attnserve_batch_size_count")
    single = (metric(after, 'attnserve_batch_size_bucket{le="1.0"}')
              - metric(before, 'attnserve_batch_size_bucket{le="1.0"}'))
    sequences = metric(after, "attnserve_sequences_total") - metric(before, "attnserve_sequences_total")
    assert sequences == 200
    assert batches < 200 and single < batches, "no batch of more than one sequence formed"


def test_overload_gives_503_with_retry_after_then_recovers(minilm_bundle: Path, tmp_path: Path) -> None:
    text = " ".join(["overload"] * 60)
    with running_server(minilm_bundle, tmp_path / "server.log", max_queue_sequences=4, max_batch_size=2) as server:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                         limits=httpx.Limits(max_connections=100)) as client:
                return await asyncio.gather(*(client.post("/encode", json={"texts": [text]}) for _ in range(80)))

        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}, codes
        for r in responses:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == 503
        after = httpx.post(f"{server.url}/encode", json={"texts": ["fine again"]}, timeout=30)
        assert after.status_code == 200
        assert metric(httpx.get(f"{server.url}/metrics").text, "attnserve_queue_depth") == 0


LONG = [[101] + [2000 + i for i in range(254)] + [102]] * 24  # 24 full-length sequences, ~40 ms each on 2 cores


def test_timeout_gives_504_and_drops_what_has_not_run(minilm_bundle: Path, tmp_path: Path) -> None:
    with running_server(minilm_bundle, tmp_path / "server.log", max_batch_size=1,
                        request_timeout_s=0.3) as server:
        slow = httpx.post(f"{server.url}/encode", json={"tokens": LONG}, timeout=30)
        assert slow.status_code == 504
        assert "request_timeout_s" in slow.json()["error"]["message"]
        ok = httpx.post(f"{server.url}/encode", json={"texts": ["still here"]}, timeout=30)
        assert ok.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert metric(metrics, "attnserve_sequences_total") < len(LONG) + 1
        assert metric(metrics, "attnserve_queue_depth") == 0


def test_a_client_that_goes_away_has_its_sequences_dropped(minilm_bundle: Path, tmp_path: Path) -> None:
    with running_server(minilm_bundle, tmp_path / "server.log", max_batch_size=1, request_timeout_s=60) as server:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{server.url}/encode", json={"tokens": LONG}, timeout=0.2)  # gives up, closes
        ok = httpx.post(f"{server.url}/encode", json={"texts": ["still here"]}, timeout=30)
        assert ok.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert metric(metrics, "attnserve_sequences_total") < len(LONG) + 1
        assert metric(metrics, "attnserve_queue_depth") == 0
        assert 'attnserve_requests_total{model="all-MiniLM-L6-v2",route="/encode",status="499"} 1.0' in metrics
