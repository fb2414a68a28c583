"""create_app(settings): the FastAPI application; everything heavy is built in its lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .auth import ApiKeys
from .body import BodyReader
from .context import Context
from .engine import build_engines
from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import RequestMetrics, SecurityHeaders
from .routes import encode, health, models, openai, tasks, tokens, v2
from .routes.explorer import explorer_router
from .routes.plain import plain_routes
from .settings import Settings


def load_context(ctx: Context) -> None:
    """Build the engine, then report ready."""
    ctx.engines = build_engines(ctx.settings, ctx.metrics.observer)
    for name, engine in ctx.engines.items():
        choice = engine.runtime.choice
        ctx.metrics.model_info.labels(name, engine.bundle.task.name, choice.engine, choice.precision).set(1)
    ctx.ready = True


def create_app(settings: Settings) -> FastAPI:
    ctx = Context(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not ctx.ready:  # `attnserve serve` loads before the server starts, to fail with a clear message
            load_context(ctx)
        try:
            yield
        finally:
            # uvicorn has stopped taking connections and finished in-flight requests by now;
            # the batcher still finishes whatever is queued before the thread ends.
            ctx.ready = False
            for engine in ctx.engines.values():
                engine.batcher.stop(settings.request_timeout_s)
            ctx.pool.shutdown()

    app = FastAPI(
        title="attnserve",
        summary="Contextual vectors and attention weights from Transformer encoders",
        version="0.1.0",
        lifespan=lifespan,
        strict_content_type=False,  # BodyReader has already refused every body that is not JSON
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    routers = [encode.router, openai.router, tokens.router, tasks.router, health.router, models.router, v2.router]
    for router in routers:
        app.include_router(router)
    if settings.explorer:
        app.include_router(explorer_router())
    # ahead of FastAPI's own routes, which stay for the OpenAPI schema and the docs
    app.router.routes[:0] = plain_routes(route for router in routers for route in router.routes)
    # the last added runs first: metrics see every answer, keys are checked before a body is read
    app.add_middleware(BodyReader, max_bytes=settings.max_body_bytes, max_values=settings.max_json_values,
                       timeout_s=settings.body_timeout_s)
    app.add_middleware(ApiKeys, keys=settings.api_keys)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=ctx.metrics, answers=ctx.answers)
    return app
