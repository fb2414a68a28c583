"""HTTP connections: uvicorn's httptools protocol with the bounds it lacks, and the server's config.

uvicorn bounds neither the headers' size nor the time a client takes to send them: an idle socket or headers
trickled byte by byte (slowloris) held a connection for minutes, and a 32 MB header was read whole. Here each
connection gets ``header_timeout_s`` to send a request's headers (from its opening, or from the end of the
previous response when it is kept alive), at most ``max_header_bytes`` of them (431), and the server holds at
most ``max_connections``. The body's own deadline is kept by the BodyReader middleware (408).

At shutdown uvicorn closes at once every connection with no request parsed, losing a request already on its way
(one sent on a connection accepted a moment before, or the next one on a kept-alive connection); here such a
connection gets ``shutdown_grace_s`` to send its request's headers, and that request is answered with
``connection: close``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


# scope["extensions"] key: a future resolved when the request's connection drops before its response is done
DISCONNECTED = "attnserve.disconnected"


def hung_up(scope: dict[str, Any]) -> bool:
    """Whether the request's connection has already dropped (known only under attnserve's protocol)."""
    gone = scope.get("extensions", {}).get(DISCONNECTED)
    return gone is not None and gone.done()


class BoundedHttpProtocol(HttpToolsProtocol):
    """Per connection: a deadline for the headers, a cap on their size, a cap on connections, and a deadline for
    a client that stops reading its answer."""

    max_header_bytes = 16384
    header_timeout_s = 10.0
    send_timeout_s = 30.0
    max_connections = 512
    shutdown_grace_s = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._refused = False
        self._header_bytes = 0  # request line and headers as parsed
        self._raw_header_bytes = 0  # bytes received since the request began, while its headers are incomplete
        self._header_timer: asyncio.TimerHandle | None = None
        self._shutting_down = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.transport.abort()  # connection_lost follows and forgets it
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_send_timer()
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        if self.cycle is not None and not self.cycle.response_complete:
            gone = self.cycle.scope.get("extensions", {}).get(DISCONNECTED)
            if gone is not None and not gone.done():
                gone.set_result(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._raw_header_bytes += len(data)
        super().data_received(data)
        # headers still incomplete after parsing: what httptools holds for them is bounded here
        if self._in_headers and self._raw_header_bytes > self.max_header_bytes:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._raw_header_bytes = 0
        self._cancel_header_timer()
        if self._header_bytes > self.max_header_bytes:
            self._refuse_headers()
            return
        super().on_headers_complete()
        if self._shutting_down and self.cycle is not None:
            self.cycle.keep_alive = False  # the last request this connection gets answered
        # the submit stage waits on this instead of a task reading receive() for http.disconnect
        self.scope.setdefault("extensions", {})[DISCONNECTED] = self.loop.create_future()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
            # uvicorn pauses reading while a large body waits for the app and resumes it only when the app
            # reads again, which no route does once the body is whole: a hang-up after a body over 64 KB went
            # unseen and its request ran for nobody. Reading on notices it; a pipelined request behind this one
            # pauses reading again (uvicorn), so nothing more is buffered than before.
            self.flow.resume_reading()

    def shutdown(self) -> None:
        """Called once as the server stops: a request under way finishes (uvicorn's own rule); between requests
        the connection has ``shutdown_grace_s`` to send the next one's headers, instead of being closed at once."""
        self._shutting_down = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif not self.transport.is_closing():
            self._grace_timer = self.loop.call_later(self.shutdown_grace_s, self._close_unless_answering)

    def _close_unless_answering(self) -> None:
        self._grace_timer = None
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests and not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        """431 and close: the rest of what the client sends is never parsed."""
        self._refused = True
        if not self.transport.is_closing():
            body = (b'{"error":{"message":"request headers exceed %d bytes (max_header_bytes)",'
                    b'"type":"request_too_large","param":"headers","code":431}}' % self.max_header_bytes)
            self.transport.write(_431 % (len(body), body))
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._in_headers = True  # the next request's headers, if the connection is kept alive
        self._raw_header_bytes = 0

    def pause_writing(self) -> None:
        """The client has not read what was written (the write buffer is past its high-water mark): it has
        ``send_timeout_s`` to read on. A client that asks for a large answer and never reads it held that answer
        (an attention response: ~60 MB) for as long as it kept the connection open."""
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout_s, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_timer()

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _not_reading(self) -> None:
        self._send_timer = None
        self.transport.abort()  # the unsent answer is dropped; connection_lost follows (the route's sends return)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    """The one place the server's connection bounds are set, for `attnserve serve` and in-process tests."""
    protocol = type("Protocol", (BoundedHttpProtocol,), {
        "max_header_bytes": settings.max_header_bytes, "header_timeout_s": settings.header_timeout_s,
        "send_timeout_s": settings.send_timeout_s, "max_connections": settings.max_connections,
    })
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
        # uvicorn answers 503 once connections or tasks reach limit_concurrency; connections stop one below it
        http=protocol, limit_concurrency=settings.max_connections + 1,
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 1,
    )
