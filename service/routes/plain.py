"""The JSON POST routes as plain Starlette routes, placed ahead of FastAPI's own.

FastAPI's per-request machinery around an endpoint (its router's matching, dependency solving, the content type
parsed with the email package, the wrappers) took a quarter of the event loop's CPU per one-sentence request,
more than the body's parsing and validation. Each route here parses and validates the body as FastAPI does
(`service.parse`: the same 400 and 422 answers) and calls the same endpoint; FastAPI's routes stay behind them
for the OpenAPI schema, the docs and every other route.
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


def plain_json_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """A plain route for each FastAPI route whose endpoint is ``(body: <a pydantic model>, request) -> Response``."""
    plain = []
    for route in routes:
        if not isinstance(route, APIRoute) or list(inspect.signature(route.endpoint).parameters) != ["body", "request"]:
            continue
        hints = get_type_hints(route.endpoint)
        model = hints["body"]
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or hints.get("request") is not Request \
                or hints.get("return") is not Response:
            raise TypeError(f"{route.path}: a body-and-request endpoint must take (body: Model, request: Request) "
                            f"and return a Response, not {hints}")
        plain.append(Route(route.path, _handler(route.endpoint, model), methods=sorted(route.methods or ()),
                           name=route.name))
    return plain


def _handler(endpoint: Endpoint, model: type[BaseModel]) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await endpoint(await parse_body(request, model), request)

    return handle
