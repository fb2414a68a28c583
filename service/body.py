"""Request bodies, read before any route sees them: JSON only, bounded in size, time and number of values.

Parsing JSON holds the event loop (and the GIL) about 1 us per value whichever parser does it, so a 4 MB body
of one-token lists held it for over a second. The values are counted first, on the raw bytes with NumPy
outside the loop, and a body with more than ``max_json_values`` is refused before it is parsed.
"""

from __future__ import annotations

import asyncio
import email.message

import numpy as np
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .connections import hung_up
from .errors import error_response
from .kserve import HEADER

# status, message, param, extra headers
Refusal = tuple[int, str, str | None, dict[str, str] | None]

# A JSON value starts after one of these outside a string (or at the start): an upper bound on the values.
_SEPARATORS = np.zeros(256, dtype=bool)
_SEPARATORS[[ord(","), ord(":"), ord("["), ord("{")]] = True
_SCAN_FROM_BYTES = 16384  # below this, even the worst body parses in a few milliseconds


def json_values(body: bytes) -> int:
    """At most how many values the JSON text holds: separators outside strings, plus one."""
    raw = np.frombuffer(body, dtype=np.uint8)
    separators = np.flatnonzero(_SEPARATORS[raw])
    quotes = np.flatnonzero(raw == ord('"'))
    if quotes.size:
        backslashes = np.flatnonzero(raw == ord("\\"))
        if backslashes.size:
            # a quote is escaped by an odd run of backslashes just before it
            run_starts = backslashes[np.r_[True, np.diff(backslashes) != 1]]
            before = quotes - 1
            k = np.minimum(np.searchsorted(backslashes, before), backslashes.size - 1)
            in_run = backslashes[k] == before
            start = run_starts[np.maximum(np.searchsorted(run_starts, before, side="right") - 1, 0)]
            quotes = quotes[~(in_run & ((quotes - start) % 2 == 1))]
    # a separator is outside every string when an even number of (unescaped) quotes precede it
    outside = np.searchsorted(quotes, separators) % 2 == 0
    return int(np.count_nonzero(outside)) + 1


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # no header: taken as JSON, as most clients that send JSON without saying so mean it
    if content_type == "application/json":
        return True  # the common case, without parsing the header
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class BodyReader:
    """For POST: 415 unless JSON without a content encoding; 413 past ``max_bytes`` (at once when
    Content-Length says so, else as soon as a chunked body passes it) or past ``max_values``; 408 when the
    whole body has not arrived ``timeout_s`` after the headers. The body is then handed on whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_values: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.max_values, self.timeout_s = app, max_bytes, max_values, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        # the Open Inference Protocol's binary extension: a JSON header of this length, then raw tensors
        json_length = headers.get(HEADER)
        refusal = self._refuse_headers(headers, binary=json_length is not None)
        body: bytes | None = None
        if refusal is None:
            try:
                # asyncio.timeout, not wait_for: no task per request for what is nearly always already here
                async with asyncio.timeout(self.timeout_s):
                    read = await self._read(receive)
            except TimeoutError:
                refusal = (408, f"the request body did not arrive within {self.timeout_s:g} s (body_timeout_s)",
                           "body", {"Connection": "close"})
            else:
                if read is None:  # the client left before sending it all
                    return
                if isinstance(read, bytes):
                    body = read
                    json_part = body[: int(json_length)] if json_length and json_length.isdigit() else body
                    if not hung_up(scope):  # else not even counted
                        refusal = await self._refuse_body(json_part)
                else:
                    refusal = read
        if hung_up(scope):
            # sent its body and closed: nothing would reach it, so nothing is parsed or run (a flood of large
            # bodies sent and dropped costs their reading only); counted as 499
            await Response(status_code=499)(scope, receive, send)
            return
        if refusal is not None:
            status, message, param, extra = refusal
            await error_response(status, message, param, extra, scope["path"])(scope, receive, send)
            return
        first: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            # the whole body once, then the client's own messages (the disconnect the routes listen for)
            return first.pop() if first else await receive()

        await self.app(scope, replay, send)

    def _refuse_headers(self, headers: dict[str, str], binary: bool) -> Refusal | None:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            return 415, f"content-encoding {encoding} is not supported; send the body uncompressed", \
                "content-encoding", None
        content_type = headers.get("content-type")
        if not (_is_json(content_type) or (binary and content_type == "application/octet-stream")):
            return 415, f"content-type {content_type} is not supported; send application/json", "content-type", None
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return self._too_large()
        return None

    def _too_large(self) -> Refusal:
        return 413, f"request body exceeds {self.max_bytes} bytes (max_body_bytes)", "body", None

    async def _read(self, receive: Receive) -> bytes | Refusal | None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return self._too_large()
            if not message.get("more_body", False):
                return bytes(body)

    async def _refuse_body(self, body: bytes) -> Refusal | None:
        if len(body) < _SCAN_FROM_BYTES:
            return None
        values = await asyncio.get_running_loop().run_in_executor(None, json_values, body)
        if values > self.max_values:
            return 413, f"request body holds about {values} JSON values; at most {self.max_values} " \
                "(max_json_values)", "body", None
        return None
