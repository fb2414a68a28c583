"""Liveness, readiness, model description (behind API keys when set) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from ..context import get_context

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Loading, warming up or shutting down"}})
async def readyz(request: Request) -> Response:
    """The bundle is loaded and warmed and the service takes work."""
    ctx = get_context(request)
    if ctx.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)


@router.get("/v1/models")
async def models(request: Request) -> dict:
    """The served model, OpenAI-style, with what a client needs to know about it."""
    ctx = get_context(request)
    bundle = ctx.bundle
    assert bundle is not None and ctx.runtime is not None
    return {
        "object": "list",
        "data": [{
            "id": ctx.model_name,
            "object": "model",
            "owned_by": "attnserve",
            "version": bundle.config.get("version"),
            "dimensions": bundle.dimensions,
            "max_length": bundle.max_length,
            "layers": bundle.n_layers,
            "heads": bundle.n_heads,
            "vocab_size": bundle.vocab_size,
            "pooling": bundle.serving["pooling"],
            "normalize": bundle.serving["normalize"],
            "has_tokenizer": ctx.tokenizer is not None,
            "execution_provider": ctx.runtime.provider,
            "graphs": {"default": ctx.runtime.graph_kinds[False], "attentions": ctx.runtime.graph_kinds[True],
                       "batches": ctx.runtime.batch_graph},
        }],
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition, attnserve_ prefix."""
    return Response(generate_latest(get_context(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
