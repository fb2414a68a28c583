"""POST /v1/embeddings, compatible with OpenAI's embeddings API (the official client works unchanged)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..context import get_engine
from ..errors import ApiError
from ..limits import check_dimensions
from ..respond import json_response, pooled_vectors
from ..schemas import EmbeddingsRequest, EmbeddingsResponse
from ..submit import ClientGone, run_sequences
from ..tokenize import sequences_from
from .encode import ERRORS

router = APIRouter()


@router.post("/v1/embeddings", response_model=EmbeddingsResponse,
             responses={**ERRORS, 404: {"description": "Unknown model"}})
async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Pooled, normalized as the bundle says; inputs longer than the model's maximum are refused (422)."""
    ctx, engine = get_engine(request, body.model)
    bundle = engine.bundle
    dimensions = check_dimensions(body.dimensions, bundle)
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
    sequences, _ = await sequences_from(request, ctx, engine, "input", texts, token_lists, truncate=None,
                                        prompt_name=body.prompt_name)
    ctx.answers.reserve(request.scope, len(sequences) * bundle.dimensions)
    try:
        results = await run_sequences(request, engine.batcher, sequences, False, ctx.settings.request_timeout_s)
    except ClientGone:
        return Response(status_code=499)
    pooling, normalize = bundle.pooling, bundle.normalize
    total = sum(len(s) for s in sequences)

    def build() -> dict[str, Any]:
        vectors = pooled_vectors(results, pooling, pooling, normalize, body.encoding_format == "base64", dimensions)
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": engine.name,
                "usage": {"prompt_tokens": total, "total_tokens": total}}

    return await json_response(ctx, build, len(results) * bundle.dimensions)
