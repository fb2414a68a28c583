"""Optional API keys: with ATTNSERVE_API_KEYS set, the inference and model routes (/v2/models/... too) need
'Authorization: Bearer <key>', checked before the body is read, so a client without a key learns nothing
about its body (401, never 400, 413 or 422). Health, readiness, metrics, the docs and the explorer page stay
public: probes and scrapers need no key, and the schema and the page hold no secret (the page sends the key
the user types)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response

PROTECTED = frozenset({"/encode", "/v1/embeddings", "/v1/models", "/tokenize", "/decode", "/classify", "/rerank",
                       "/v1/rerank"})


def key_matches(authorization: str, keys: list[str]) -> bool:
    scheme, _, given = authorization.partition(" ")
    given_bytes = given.strip().encode()
    # compare against every key, each in constant time, so timing tells nothing about which one is close
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    return scheme.lower() == "bearer" and matched


class ApiKeys:
    """401 with WWW-Authenticate for a protected path without a valid key; everything else passes."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self.keys and scope["type"] == "http" and (path in PROTECTED or path.startswith("/v2/models")):
            authorization = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            if not key_matches(authorization.decode("latin-1"), self.keys):
                refusal = error_response(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                         "authorization", {"WWW-Authenticate": "Bearer"}, path)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
