"""One sequence that makes the runtime raise fails alone: the good requests that shared its batch get their
own right answers. A real uvicorn server on 127.0.0.1, in this process so the runner can be poisoned."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from service.app import create_app, load_context
from service.connections import uvicorn_config
from service.settings import Settings
from tests.service.conftest import free_port

POISON = 666  # a token id the poisoned runner refuses, as ONNX Runtime might refuse some input


@pytest.fixture(scope="module")
def poisoned(tiny_bundle: Path) -> Iterator[tuple[str, list[int]]]:
    settings = Settings(model=tiny_bundle, port=free_port(), max_queue_delay_ms=300, max_batch_size=16,
                        inference_workers=1, max_padding_ratio=100.0, batch_window=64)
    app = create_app(settings)
    ctx = app.state.ctx
    load_context(ctx)
    batch_sizes: list[int] = []
    honest = ctx.engine.runtime.run

    def run(sequences: list[np.ndarray], attentions: bool, alone: bool = False) -> list:
        if any(POISON in s for s in sequences):
            batch_sizes.append(len(sequences))
            raise RuntimeError("the runtime refused this batch")
        return honest(sequences, attentions, alone)

    ctx.engine.batcher.use_runner(run)
    server = uvicorn.Server(uvicorn_config(app, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield url, batch_sizes
    server.should_exit = True
    thread.join(30)


def test_good_requests_in_a_failing_batch_get_their_answers(poisoned: tuple[str, list[int]]) -> None:
    url, batch_sizes = poisoned
    bodies = [{"tokens": [[2, 10 + i, 3]]} for i in range(7)] + [{"tokens": [[2, POISON, 3]]}]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/encode", json=b) for b in bodies))

    responses = asyncio.run(together())
    assert max(batch_sizes) > 1, "the poisoned sequence never shared a batch"
    assert [r.status_code for r in responses] == [200] * 7 + [500]
    assert responses[-1].json()["error"]["message"] == (
        "inference failed for this input; the server log has the details"
    )
    with httpx.Client(base_url=url, timeout=30) as client:
        for body, response in zip(bodies[:-1], responses[:-1], strict=True):
            alone = client.post("/encode", json=body).json()
            np.testing.assert_allclose(response.json()["embeddings"], alone["embeddings"], atol=1e-5)


def test_a_request_with_a_poisoned_input_fails_whole(poisoned: tuple[str, list[int]]) -> None:
    url, _ = poisoned
    r = httpx.post(f"{url}/encode", json={"tokens": [[2, 5, 3], [2, POISON, 3]]}, timeout=30)
    assert r.status_code == 500
