"""Optional API keys: with ATTNSERVE_API_KEYS set, inference routes need 'Authorization: Bearer <key>'."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from .context import get_context
from .errors import ApiError


async def require_api_key(request: Request) -> None:
    """async, so FastAPI runs it on the event loop instead of a thread-pool hop per request."""
    keys = get_context(request).settings.api_keys
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given_bytes = given.strip().encode()
    # compare against every key, each in constant time, so timing tells nothing about which one is close
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'", "authorization",
                       {"WWW-Authenticate": "Bearer"})
