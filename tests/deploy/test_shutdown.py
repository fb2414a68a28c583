"""SIGTERM during load: the service stops taking connections, answers every request it accepted, then exits."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

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
