"""Pure ASGI middleware (no BaseHTTPMiddleware): security headers and per-route request metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .answers import AnswerBudget
from .context import MODEL_KEY
from .metrics import Metrics

ROUTES = frozenset({"/encode", "/v1/embeddings", "/v1/models", "/tokenize", "/decode", "/classify", "/rerank",
                    "/v1/rerank", "/healthz", "/readyz",
                    "/metrics", "/", "/explorer", "/docs", "/openapi.json"})


class SecurityHeaders:
    """nosniff and same-origin framing on every response: a browser never guesses a JSON error into HTML,
    and no other site can frame the explorer page (it also says frame-ancestors 'self' in its CSP)."""

    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestMetrics:
    """Counts requests by route, status and model and times them; unknown paths share one label. The model is
    the one the route resolved (`context.served_model`), read from the request's state once it is answered.
    Being outermost, it also gives back the request's answer budget (answers.py) once the answer is sent."""

    def __init__(self, app: ASGIApp, metrics: Metrics, answers: AnswerBudget | None = None) -> None:
        self.app, self.metrics, self.answers = app, metrics, answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in ROUTES else "/v2" if path.startswith("/v2") else "other"
        status: dict[str, Any] = {"code": 500}
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if self.answers is not None:  # the answer is sent or dropped: its numbers are given back
                self.answers.release_held(scope)
            model = scope.get("state", {}).get(MODEL_KEY, "")
            self.metrics.requests.labels(route, str(status["code"]), model).inc()
            self.metrics.request_seconds.labels(route, model).observe(time.perf_counter() - started)
