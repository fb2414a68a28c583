"""POST /v1/embeddings, compatible with OpenAI's embeddings API (the official client works unchanged)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..context import get_context
from ..dispatch import ClientGone, run_sequences
from ..errors import ApiError
from ..postprocess import b64, pooled_vector
from ..schemas import EmbeddingsRequest, EmbeddingsResponse
from .common import json_response, sequences_from
from .encode import ERRORS

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingsResponse,
             responses={**ERRORS, 404: {"description": "Unknown model"}})
async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Pooled, normalized as the bundle says; inputs longer than the model's maximum are refused (422)."""
    ctx = get_context(request)
    bundle = ctx.bundle
    assert bundle is not None and ctx.batcher is not None
    if body.model != ctx.model_name:
        raise ApiError(404, f"model: unknown model {body.model!r}; this server serves {ctx.model_name!r}", "model")
    if body.dimensions is not None and body.dimensions != bundle.dimensions:
        raise ApiError(422, f"dimensions: this model gives {bundle.dimensions} dimensions, not {body.dimensions}",
                       "dimensions")
    texts: list[str] | None = None
    token_lists: list[list[int]] | None = None
    if isinstance(body.input, str):
        texts = [body.input]
    elif not body.input:
        raise ApiError(422, "input: give at least one input", "input")
    elif isinstance(body.input[0], str):
        texts = body.input  # type: ignore[assignment]
    elif isinstance(body.input[0], int):
        token_lists = [body.input]  # type: ignore[list-item]
    else:
        token_lists = body.input  # type: ignore[assignment]
    sequences, _ = await sequences_from(ctx, "input", texts, token_lists, truncate=None)
    try:
        results = await run_sequences(request, ctx.batcher, sequences, False, ctx.settings.request_timeout_s)
    except ClientGone:
        return Response(status_code=499)
    pooling, normalize = bundle.serving["pooling"], bundle.serving["normalize"]
    total = sum(len(s) for s in sequences)

    def build() -> dict[str, Any]:
        data = []
        for i, r in enumerate(results):
            vector = pooled_vector(r, pooling, pooling, normalize)
            data.append({"object": "embedding", "index": i,
                         "embedding": b64(vector) if body.encoding_format == "base64" else vector})
        return {"object": "list", "data": data, "model": ctx.model_name,
                "usage": {"prompt_tokens": total, "total_tokens": total}}

    return await json_response(ctx, build, len(results) * bundle.dimensions)
