"""POST /encode: contextual vectors (pooled, per token) and attention weights."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..context import get_engine
from ..limits import attention_selection, check_attention_values, check_dimensions, check_sparse_options
from ..pool import b64, keep_attentions, sparse_vector
from ..respond import json_response, pooled_vectors
from ..schemas import EncodeRequest, EncodeResponse
from ..submit import ClientGone, run_sequences
from ..tokenize import sequences_from

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text} for code, text in [
        (400, "Malformed JSON"), (401, "Missing or invalid API key"), (408, "Body not received within body_timeout_s"),
        (404, "Unknown model"),
        (413, "Body too large, or too many JSON values"), (415, "Not JSON, or compressed"),
        (422, "Invalid input or a limit exceeded; the error names the field"), (503, "Queue full (Retry-After)"),
        (500, "Inference failed for this input"), (504, "Not answered within request_timeout_s"),
    ]
}


@router.post("/encode", response_model=EncodeResponse, responses=ERRORS)
async def encode(body: EncodeRequest, request: Request) -> Response:
    """Encode texts or token id lists; see the README for every option."""
    ctx, engine = get_engine(request, body.model, ("embed", "sparse"), "/encode")
    bundle, settings = engine.bundle, ctx.settings
    kind = "texts" if body.texts is not None else "tokens"
    sparse = bundle.task.kind == "sparse"
    check_sparse_options(body, sparse, engine.name)
    dimensions = check_dimensions(body.dimensions, bundle)
    layers, heads = (
        attention_selection(body.attention_layers, body.attention_heads, bundle) if body.return_attentions
        else ([], None)
    )
    sequences, strings = await sequences_from(request, ctx, engine, kind, body.texts, body.tokens,
                                              body.truncate, body.prompt_name)
    values = (check_attention_values(sequences, len(layers), len(heads) if heads else 1, settings)
              if body.return_attentions else 0)
    pooling = body.pooling or bundle.pooling
    total = sum(len(s) for s in sequences)
    values += (len(sequences) if pooling != "none" and not sparse else 0) * bundle.dimensions
    values += total * bundle.dimensions if body.return_token_embeddings else 0
    ctx.answers.reserve(request.scope, values)  # a sparse answer: top-k entries a text, never large
    try:
        results = await run_sequences(request, engine.batcher, sequences, body.return_attentions,
                                      settings.request_timeout_s,
                                      keep_attentions(layers, heads) if body.return_attentions else None)
    except ClientGone:
        return Response(status_code=499)

    normalize = bundle.normalize if body.normalize is None else body.normalize
    base64 = body.encoding_format == "base64"

    if sparse:
        values = sum(len(r.sparse[0]) if r.sparse else 0 for r in results) * 2

    def build() -> dict[str, Any]:
        out: dict[str, Any] = {"model": engine.name}
        if sparse:
            out["sparse_embeddings"] = [sparse_vector(r, body.sparse_top_k) for r in results]
        elif pooling != "none":
            out["embeddings"] = pooled_vectors(results, pooling, bundle.pooling, normalize, base64, dimensions)
        if body.return_token_embeddings:
            out["token_embeddings"] = [b64(r.hidden) if base64 else r.hidden for r in results]
        if body.return_attentions:
            out["attentions"] = [r.attentions for r in results]
        if strings is not None:
            out["tokens"] = strings
        out["usage"] = {"prompt_tokens": total, "total_tokens": total}
        return out

    return await json_response(ctx, build, values)
