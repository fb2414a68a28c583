"""GET /explorer: one static page that encodes a text through the public API and draws its attention.

Everything it loads comes from this server (no CDN), so it works offline and behind a firewall.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import HTMLResponse, RedirectResponse

PAGE = Path(__file__).resolve().parent.parent / "static" / "explorer.html"
# Only this origin: the page cannot load anything from elsewhere even if edited to.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def explorer_router() -> APIRouter:
    router = APIRouter()
    html = PAGE.read_text(encoding="utf-8")

    @router.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/explorer")

    @router.get("/explorer", include_in_schema=False)
    async def explorer() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})

    return router
