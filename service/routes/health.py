"""Liveness, readiness and Prometheus metrics (never behind API keys)."""

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


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition, attnserve_ prefix."""
    return Response(generate_latest(get_context(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
