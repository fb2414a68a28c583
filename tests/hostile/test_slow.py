"""Slow and idle clients: connections that never finish a request are closed after the timeouts set for
this server (header 1 s, body 2 s, keep-alive 1 s), and the number of connections is bounded; clients that stop
reading their answers are dropped after send_timeout_s (2 s), and what their answers hold is bounded."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from pathlib import Path

import httpx

from tests.service.conftest import Server, running_server

from .conftest import HOSTILE_SETTINGS, assert_healthy, connect, metric, read_until_closed, status_of

MARGIN_S = 2.0  # scheduling slack on a busy 2-core machine


def test_idle_connection_is_closed(tiny_server: Server) -> None:
    with contextlib.closing(connect(tiny_server)) as sock:
        _, took = read_until_closed(sock, HOSTILE_SETTINGS["header_timeout_s"] + MARGIN_S)
    assert took >= HOSTILE_SETTINGS["header_timeout_s"] * 0.9


def test_headers_trickled_byte_by_byte_are_cut_off(tiny_server: Server) -> None:
    started = time.monotonic()
    with contextlib.closing(connect(tiny_server)) as sock:
        for byte in b"POST /encode HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # closed by the server
            time.sleep(0.05)
            if time.monotonic() - started > HOSTILE_SETTINGS["header_timeout_s"] + MARGIN_S:
                break
        read_until_closed(sock, 1.0)
    assert time.monotonic() - started < HOSTILE_SETTINGS["header_timeout_s"] + MARGIN_S + 1.0


def test_body_trickled_slowly_gets_408(tiny_server: Server) -> None:
    started = time.monotonic()
    with contextlib.closing(connect(tiny_server)) as sock:
        sock.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        response = b""
        for _ in range(200):
            try:
                sock.send(b" ")
            except OSError:
                break
            time.sleep(0.05)
            with contextlib.suppress(BlockingIOError):
                response += sock.recv(65536, socket.MSG_DONTWAIT)
            if response or time.monotonic() - started > HOSTILE_SETTINGS["body_timeout_s"] + MARGIN_S:
                break
        rest, _ = read_until_closed(sock, 2.0)
    response += rest
    assert status_of(response) == 408, response[:200]
    assert b'"param":"body"' in response
    assert time.monotonic() - started < HOSTILE_SETTINGS["body_timeout_s"] + MARGIN_S + 2.0


def test_idle_keep_alive_connection_is_closed(tiny_server: Server) -> None:
    with contextlib.closing(connect(tiny_server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = read_until_closed(sock, HOSTILE_SETTINGS["keep_alive_timeout_s"] + MARGIN_S)
    assert status_of(data) == 200


def test_connections_past_the_limit_are_closed_at_once(tiny_server: Server) -> None:
    limit = HOSTILE_SETTINGS["max_connections"]
    held = [connect(tiny_server) for _ in range(limit)]
    try:
        time.sleep(0.2)  # let the server accept them all
        with contextlib.closing(connect(tiny_server)) as extra:
            _, took = read_until_closed(extra, 0.9)  # well before the 1 s header timeout
        assert took < 0.9
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{tiny_server.url}/healthz", timeout=5).status_code == 200


def test_a_client_that_never_reads_its_large_answer_is_dropped(tiny_server: Server) -> None:
    """A large answer (token embeddings: ~20 MB of JSON) to a client that stops reading is held only
    send_timeout_s: then the connection is dropped with the rest of the answer, which used to stay in memory for
    as long as the client kept the connection open."""
    body = (b'{"tokens": [' + b",".join([b"[" + b",".join([b"7"] * 128) + b"]"] * 256)
            + b'], "return_token_embeddings": true}')
    head = (b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    with contextlib.closing(sock):
        sock.connect(("127.0.0.1", tiny_server.port))
        sock.sendall(head + body)
        time.sleep(HOSTILE_SETTINGS["send_timeout_s"] + MARGIN_S + 2)  # answer computed, then left unread
        got, started = b"", time.monotonic()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(1 << 20):
                got += chunk
        took = time.monotonic() - started
    length = int(re.search(rb"content-length: (\d+)", got, re.I).group(1))
    assert length > 10_000_000 and len(got) < length / 2, (length, len(got))  # the rest was dropped
    assert took < 4, took


def test_large_answers_to_clients_that_do_not_read_are_bounded_by_max_answer_values(
        tiny_bundle: Path, tmp_path: Path) -> None:
    """Each asks for ~2.1 million numbers and reads nothing: one is answered, the others get 503 at once instead
    of holding ~20 MB each; the numbers are given back when the unread answer is dropped (send_timeout_s)."""
    body = (b'{"tokens": [' + b",".join([b"[" + b",".join([b"7"] * 128) + b"]"] * 256)
            + b'], "return_token_embeddings": true}')
    head = (b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body))
    with running_server(tiny_bundle, tmp_path / "server.log", max_answer_values=3_000_000,
                        **HOSTILE_SETTINGS) as server:
        socks = []
        try:
            for _ in range(5):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(head + body)
                socks.append(sock)
            statuses = []
            for sock in socks:
                sock.settimeout(10)
                statuses.append(status_of(sock.recv(64)))
            held = metric(server, "attnserve_answer_values")
            assert sorted(statuses) == [200, 503, 503, 503, 503], statuses
            assert 2_000_000 < held <= 3_000_000, held
            deadline = time.monotonic() + HOSTILE_SETTINGS["send_timeout_s"] + MARGIN_S + 3
            while metric(server, "attnserve_answer_values") != 0:
                assert time.monotonic() < deadline, "the unread answer's numbers were never given back"
                time.sleep(0.2)
        finally:
            for sock in socks:
                sock.close()
        assert_healthy(server)
