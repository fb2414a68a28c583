"""Requests that are cheap to send and dear to answer: bodies sent and dropped at once, and texts that take the
tokenizer long (a run of punctuation: every character a token). Neither may leave work running for nobody, nor
a queue that grows without bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, running_server

from .conftest import HOSTILE_SETTINGS, assert_healthy, connect, metric


def test_a_request_whose_client_leaves_after_a_large_body_is_never_run(tiny_server: Server) -> None:
    """A body of megabytes sent whole, then the connection closed: the server used to stop reading once the body
    was in (uvicorn's flow control pauses past 64 KB), never saw the hang-up, and ran the request for nobody."""
    body = json.dumps({"texts": ["word " * 3_800] * 100, "truncate": True}).encode()
    assert len(body) > 1_000_000
    head = f"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    sequences = metric(tiny_server, "attnserve_sequences_total")
    gone = metric(tiny_server, "attnserve_requests_total", route="/encode", status="499")
    for _ in range(3):
        with contextlib.closing(connect(tiny_server)) as sock:
            sock.sendall(head.encode() + body)
    deadline = time.monotonic() + 10
    while metric(tiny_server, "attnserve_requests_total", route="/encode", status="499") < gone + 3:
        assert time.monotonic() < deadline, "the hang-ups were not seen"
        time.sleep(0.1)
    time.sleep(0.5)
    assert metric(tiny_server, "attnserve_sequences_total") == sequences


@pytest.fixture(scope="module")
def bounded_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("flood") / "server.log"
    with running_server(tiny_bundle, log, max_tokenize_queue_chars=300_000, **HOSTILE_SETTINGS) as server:
        yield server
        assert_healthy(server)


def test_texts_dear_to_tokenize_meet_a_bound_and_a_503_at_once(bounded_server: Server) -> None:
    texts = {"texts": ["!" * 19_000] * 10, "truncate": True}  # 190,000 characters, each one a token

    async def flood() -> list[tuple[int, str, float]]:
        async with httpx.AsyncClient(base_url=bounded_server.url, timeout=60) as client:
            async def one() -> tuple[int, str, float]:
                started = time.monotonic()
                r = await client.post("/encode", json=texts)
                return r.status_code, r.text if r.status_code != 200 else "", time.monotonic() - started

            return await asyncio.gather(*(one() for _ in range(12)))

    answers = asyncio.run(flood())
    statuses = sorted(status for status, _, _ in answers)
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) == {200, 503}, answers
    refusals = [(text, took) for status, text, took in answers if status == 503]
    for text, took in refusals:
        assert "max_tokenize_queue_chars" in json.loads(text)["error"]["message"]
        assert took < 5, took  # at once, not after waiting its turn
    deadline = time.monotonic() + 10
    while metric(bounded_server, "attnserve_tokenize_queue_chars") != 0:  # every admitted character released
        assert time.monotonic() < deadline, metric(bounded_server, "attnserve_tokenize_queue_chars")
        time.sleep(0.1)
