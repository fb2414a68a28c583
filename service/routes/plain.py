"""The POST routes as plain Starlette routes, placed ahead of FastAPI's own.

FastAPI's per-request machinery around an endpoint (its router's matching, dependency solving, the content type
parsed with the email package, the wrappers) took a quarter of the event loop's CPU per one-sentence request,
more than the body's parsing and validation. Each route here calls the same endpoint with what FastAPI would pass
it: the body parsed and validated as FastAPI does (`service.parse`: the same 400 and 422 answers), or the path's
parameters (KServe's infer, which reads its own body). FastAPI's routes stay behind them for the OpenAPI schema,
the docs and every other route.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import get_type_hints

from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..parse import parse_body

Endpoint = Callable[[BaseModel, Request], Awaitable[Response]]


def plain_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """A plain route for each FastAPI POST route whose endpoint returns a Response and takes either
    ``(body: <a pydantic model>, request)`` or ``(request, <the path's parameters, as str>)``; other routes are
    left to FastAPI."""
    plain = []
    for route in routes:
        if not isinstance(route, APIRoute) or route.methods != {"POST"}:
            continue
        params = list(inspect.signature(route.endpoint).parameters)
        hints = get_type_hints(route.endpoint)
        if hints.get("return") is not Response or hints.get("request") is not Request:
            continue
        if params == ["body", "request"] and isinstance(hints["body"], type) and issubclass(hints["body"], BaseModel):
            handler = _json_handler(route.endpoint, hints["body"])
        elif params[0] == "request" and set(params[1:]) >= set(route.param_convertors) \
                and all(hints.get(p) in (str, str | None) for p in params[1:]):
            handler = _path_handler(route.endpoint, [p for p in params[1:] if p in route.param_convertors])
        else:
            continue
        plain.append(Route(route.path, handler, methods=["POST"], name=route.name))
    return plain


def _json_handler(endpoint: Endpoint, model: type[BaseModel]) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await endpoint(await parse_body(request, model), request)

    return handle


def _path_handler(endpoint: Callable[..., Awaitable[Response]],
                  names: list[str]) -> Callable[[Request], Awaitable[Response]]:
    """The path's parameters by name; one the path lacks keeps the endpoint's default (KServe's version)."""
    async def handle(request: Request) -> Response:
        return await endpoint(request, **{n: request.path_params[n] for n in names})

    return handle
