"""Security headers on every response, and ordinary client outcomes (timeouts, disconnects) log no errors."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, running_server

from .conftest import errors_in


def test_explorer_cannot_be_framed_by_other_sites(tiny_server: Server) -> None:
    r = httpx.get(f"{tiny_server.url}/explorer", timeout=10)
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "SAMEORIGIN"


@pytest.mark.parametrize(("method", "path"), [("GET", "/healthz"), ("GET", "/explorer"), ("GET", "/metrics"),
                                              ("POST", "/encode"), ("GET", "/nowhere")])
def test_every_response_says_nosniff(tiny_server: Server, method: str, path: str) -> None:
    r = httpx.request(method, f"{tiny_server.url}{path}", json={"texts": ["a"]} if method == "POST" else None)
    assert r.headers["x-content-type-options"] == "nosniff"


def test_timeouts_and_disconnects_log_no_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server(tiny_bundle, log, request_timeout_s=0.05, inference_workers=1) as server:
        body = {"tokens": [[7] * 128] * 64}

        async def crowd() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                return [r.status_code for r in await asyncio.gather(*(client.post("/encode", json=body)
                                                                       for _ in range(16)))]

        statuses = asyncio.run(crowd())
        assert 504 in statuses
        for _ in range(8):  # clients that leave while their request is queued
            with contextlib.closing(socket.create_connection(("127.0.0.1", server.port))) as sock:
                payload = httpx.Request("POST", f"{server.url}/encode", json=body).read()
                sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        time.sleep(1.0)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert errors_in(log) == []
