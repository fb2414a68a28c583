"""SIGTERM during load: the service stops taking connections, answers every request it accepted, then exits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.hostile.conftest import read_until_closed
from tests.service.conftest import Server


def test_sigterm_during_load_loses_no_accepted_request(minilm_bundle: Path, tmp_path: Path) -> None:
    server = Server(minilm_bundle, tmp_path / "server.log", max_batch_size=4)
    server.wait_ready()
    text = " ".join(["graceful shutdown keeps every accepted request"] * 8)
    outcomes: list[tuple[float, object]] = []

    async def client(stop_at: float) -> None:
        # a fresh connection per request, so "accepted" is unambiguous: a connection the server took
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            while time.monotonic() < stop_at:
                sent = time.monotonic()
                try:
                    r = await http.post("/encode", json={"texts": [text]})
                    outcomes.append((sent, r.status_code))
                except httpx.ConnectError:
                    outcomes.append((sent, "refused"))
                    await asyncio.sleep(0.05)
                except httpx.HTTPError as exc:  # reset, or closed without an answer: a lost request
                    outcomes.append((sent, type(exc).__name__))

    async def main() -> float:
        stop_at = time.monotonic() + 4
        load = [asyncio.create_task(client(stop_at)) for _ in range(24)]
        await asyncio.sleep(1.5)
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*load)
        return sigterm_at

    try:
        sigterm_at = asyncio.run(main())
        # uvicorn re-raises the SIGTERM it handled once it has shut down, so the exit status is the signal's
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    # Before SIGTERM: answers only. After it: answers, 503, refused connections, or a reset of a connection the
    # kernel queued but the closing server never accepted (the application never saw that request).
    assert {o for sent, o in outcomes if sent < sigterm_at} <= {200, 503}
    assert {o for sent, o in outcomes if sent >= sigterm_at} <= {200, 503, "refused", "ReadError"}
    # everything sent well before SIGTERM (its connection surely accepted) was answered
    in_flight = [o for sent, o in outcomes if sent < sigterm_at - 0.1]
    assert in_flight and in_flight.count(200) == len(in_flight), in_flight
    assert any(o == "refused" for sent, o in outcomes if sent > sigterm_at)  # and new work was turned away
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    assert "Application shutdown complete" in log  # the lifespan ran: the batcher drained and stopped


def _post(body: bytes = b'{"texts": ["still answered after SIGTERM"]}') -> bytes:
    return (b"POST /encode HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


def _read_one_response(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _answered_then_closed(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    assert b"connection: close" in head.lower(), head
    assert len(json.loads(body)["embeddings"]) == 1


def test_connections_between_requests_at_sigterm_get_one_more_answer(tiny_bundle: Path, tmp_path: Path) -> None:
    """uvicorn closes, at shutdown, every connection with no request parsed yet: one it has just accepted whose
    request is still on its way, and a kept-alive one whose next request crosses the shutdown. Both lost a
    request the client had every right to send; here each gets a short grace to send one, answered with
    `connection: close`. An idle connection that sends nothing is closed after that grace."""
    server = Server(tiny_bundle, tmp_path / "server.log")
    server.wait_ready()
    address = ("127.0.0.1", server.port)
    with contextlib.ExitStack() as sockets:
        sockets.callback(server.stop)
        connect = lambda: sockets.enter_context(socket.create_connection(address))  # noqa: E731
        fresh = connect()  # accepted, nothing sent yet
        kept = connect()  # one request answered, kept alive
        kept.sendall(_post())
        first = _read_one_response(kept)
        assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
        partial = connect()  # half its headers sent
        request = _post()
        partial.sendall(request[:40])
        idle = connect()  # never sends anything
        time.sleep(0.3)  # the server has accepted them all
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # the listener is closed in the same step that shuts the connections down: once refused, shutdown has begun
        while time.monotonic() - sigterm_at < 5:
            try:
                socket.create_connection(address, timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the server kept accepting connections 5 s after SIGTERM")
        fresh.sendall(_post())
        kept.sendall(_post())
        partial.sendall(request[40:])
        for sock in (kept, partial, fresh):
            _answered_then_closed(read_until_closed(sock, 20)[0])
        assert read_until_closed(idle, 20)[0] == b""  # closed without an answer: it asked for nothing
        assert server.proc.wait(10) in (0, -signal.SIGTERM)
        assert time.monotonic() - sigterm_at < 5  # the idle one held the exit for the grace only
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
