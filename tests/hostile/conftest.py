"""A real server on 127.0.0.1 with short connection timeouts, and raw-socket helpers for framing attacks.

Every test here was first run against the service before the hardening and failed there."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, running_server

# Short enough that the slow-client tests finish in seconds; the defaults are in the README.
HOSTILE_SETTINGS = {"header_timeout_s": 1, "body_timeout_s": 2, "keep_alive_timeout_s": 1, "send_timeout_s": 2,
                    "max_header_bytes": 8192, "max_connections": 48}


def errors_in(log: Path) -> list[str]:
    """Lines a clean run never writes: errors, tracebacks, asyncio's never-retrieved exceptions."""
    return [line for line in log.read_text().splitlines()
            if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|never retrieved", line)]


def assert_healthy(server: Server) -> None:
    """Still alive, still answering /encode correctly, and nothing in the log but ordinary lines."""
    assert server.proc.poll() is None, "the server died"
    r = httpx.post(f"{server.url}/encode", json={"tokens": [[2, 7, 3]]}, timeout=10)
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"][0]) == 64
    assert errors_in(server.log) == []


@pytest.fixture(scope="package")
def tiny_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    with running_server(tiny_bundle, log, **HOSTILE_SETTINGS) as server:
        yield server
        assert_healthy(server)  # the server answers normally after everything the suite threw at it


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took. Fails the test
    when the server still holds the connection after ``limit_s``."""
    started = time.monotonic()
    data = b""
    sock.settimeout(0.1)
    while time.monotonic() - started < limit_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - started
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    pytest.fail(f"the server still held the connection after {limit_s} s (got {data[:80]!r})")


def status_of(response: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(match.group(1)) if match else None


def raw_request(server: Server, head: bytes, body: bytes = b"") -> bytes:
    """Sends a request and reads the answer; a server that stops reading and closes mid-request (as it may
    for giant headers) gives whatever it answered before closing."""
    with contextlib.closing(connect(server)) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(head + body)
        data, _ = read_until_closed(sock, 15)
    return data


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of a series over the label values not given."""
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        match = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total
