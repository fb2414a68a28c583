"""Errors clients see: one JSON shape everywhere (OpenAI's), never internal exception text."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("attnserve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 408: "timeout_error",
          413: "request_too_large", 415: "invalid_request_error", 422: "invalid_request_error",
          431: "request_too_large", 503: "overloaded_error", 504: "timeout_error"}


class ApiError(Exception):
    """Raised anywhere in request handling; becomes a JSON error with this status."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers


class ClientGone(Exception):
    """The client disconnected; nothing is sent back (counted as 499)."""


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None, path: str = "") -> Response:
    """OpenAI's shape; on the Open Inference Protocol's routes (/v2/...) that protocol's ``{"error": message}``,
    which Triton's and KServe's clients read."""
    if path.startswith("/v2/") or path == "/v2":
        return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json",
                        headers=headers)
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param,
                      "code": status}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def field_path(loc: tuple[Any, ...]) -> str:
    """('body', 'texts', 3) -> 'texts[3]'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("list[list[int]]", "list[str]", "str", "list[int]", "function-after[_one_kind()]"):
            continue  # pydantic's union-branch labels say nothing to a client
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.param, exc.headers, request.url.path)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return error_response(400, "request body is not valid JSON", "body", path=request.url.path)
        param = field_path(tuple(first.get("loc", ("body",))))
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")  # pydantic's prefix
        return error_response(422, f"{param}: {message}", param, path=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's only 400 is a body it could not parse (bad UTF-8, a number past 4300 digits, deep nesting)
        param = "body" if exc.status_code == 400 else None
        return error_response(exc.status_code, str(exc.detail), param, getattr(exc, "headers", None), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details", path=request.url.path)
