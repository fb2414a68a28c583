"""create_app(settings): the FastAPI application; everything heavy is built in its lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .auth import ApiKeys
from .batcher import Batcher
from .body import BodyReader
from .bundle import BundleError, load_bundle
from .context import Context
from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import RequestMetrics, SecurityHeaders
from .routes import encode, health, openai
from .routes.explorer import explorer_router
from .runtime import Runtime
from .settings import Settings
from .tokenizer import TextTokenizer

log = logging.getLogger("attnserve")


def load_context(ctx: Context) -> None:
    """Bundle, sessions (checked against config.json), tokenizer, warm-up, batcher: then ready."""
    settings = ctx.settings
    bundle = load_bundle(settings.model, settings.verify_checksums)
    if settings.max_batch_tokens < bundle.max_length:
        raise BundleError(f"max_batch_tokens ({settings.max_batch_tokens}) is below the model's maximum length "
                          f"({bundle.max_length}): a long input could never run; raise ATTNSERVE_MAX_BATCH_TOKENS")
    runtime = Runtime(bundle, settings)
    tokenizer = TextTokenizer(bundle.tokenizer_file, bundle.max_length) if bundle.tokenizer_file else None
    runtime.check_vocabulary()
    if settings.warmup:
        runtime.warmup(settings.max_batch_size)
    batcher = Batcher(
        runtime.run,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_queue=settings.max_queue_sequences,
        max_queue_delay_s=settings.max_queue_delay_ms / 1000,
        max_padding_ratio=(
            settings.packed_padding_ratio if runtime.batch_graph == "packed" else settings.max_padding_ratio
        ),
        observer=ctx.metrics,
        workers=runtime.workers,
        window=settings.batch_window,
        lone_runner=runtime.run_alone if runtime.lone_session is not None else None,
        # float32 probabilities of every layer and head per (query, key) cell
        max_attention_cells=max(1, int(settings.max_attention_batch_mb * 2**20 / (4 * bundle.n_layers
                                                                                   * bundle.n_heads))),
    )
    batcher.start()
    ctx.bundle, ctx.runtime, ctx.tokenizer, ctx.batcher = bundle, runtime, tokenizer, batcher
    ctx.ready = True
    log.info("ready: %s (%d dims, max %d tokens) from %s", ctx.model_name, bundle.dimensions, bundle.max_length,
             bundle.path)


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
            if ctx.batcher is not None:
                ctx.batcher.stop(settings.request_timeout_s)
            ctx.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="attnserve",
        summary="Contextual vectors and attention weights from Transformer encoders",
        version="0.1.0",
        lifespan=lifespan,
        strict_content_type=False,  # BodyReader has already refused every body that is not JSON
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(encode.router)
    app.include_router(openai.router)
    app.include_router(health.router)
    if settings.explorer:
        app.include_router(explorer_router())
    # the last added runs first: metrics see every answer, keys are checked before a body is read
    app.add_middleware(BodyReader, max_bytes=settings.max_body_bytes, max_values=settings.max_json_values,
                       timeout_s=settings.body_timeout_s)
    app.add_middleware(ApiKeys, keys=settings.api_keys)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=ctx.metrics)
    return app
