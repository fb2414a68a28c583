"""POST /encode: contextual vectors (pooled, per token) and attention weights."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..auth import require_api_key
from ..context import get_context
from ..dispatch import ClientGone, run_sequences
from ..limits import attention_selection, check_attention_values
from ..postprocess import b64, pooled_vector, selected_attentions
from ..schemas import EncodeRequest, EncodeResponse
from .common import json_response, sequences_from

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text} for code, text in [
        (400, "Malformed JSON"), (401, "Missing or invalid API key"), (413, "Body too large"),
        (422, "Invalid input or a limit exceeded; the error names the field"), (503, "Queue full (Retry-After)"),
        (504, "Not answered within request_timeout_s"),
    ]
}


@router.post("/encode", response_model=EncodeResponse, responses=ERRORS, dependencies=[Depends(require_api_key)])
async def encode(body: EncodeRequest, request: Request) -> Response:
    """Encode texts or token id lists; see the README for every option."""
    ctx = get_context(request)
    bundle, settings = ctx.bundle, ctx.settings
    assert bundle is not None and ctx.batcher is not None
    kind = "texts" if body.texts is not None else "tokens"
    layers, heads = (
        attention_selection(body.attention_layers, body.attention_heads, bundle) if body.return_attentions
        else ([], None)
    )
    sequences, strings = await sequences_from(ctx, kind, body.texts, body.tokens, body.truncate)
    if body.return_attentions:
        check_attention_values(sequences, len(layers), len(heads) if heads else 1, settings)
    try:
        results = await run_sequences(request, ctx.batcher, sequences, body.return_attentions,
                                      settings.request_timeout_s)
    except ClientGone:
        return Response(status_code=499)

    pooling = body.pooling or bundle.serving["pooling"]
    normalize = bundle.serving["normalize"] if body.normalize is None else body.normalize
    total = sum(len(s) for s in sequences)
    out: dict[str, Any] = {"model": ctx.model_name}
    values = 0
    if pooling != "none":
        vectors = [pooled_vector(r, pooling, bundle.serving["pooling"], normalize) for r in results]
        out["embeddings"] = [b64(v) for v in vectors] if body.encoding_format == "base64" else vectors
        values += len(vectors) * bundle.dimensions
    if body.return_token_embeddings:
        hidden = [r.hidden for r in results]
        out["token_embeddings"] = [b64(h) for h in hidden] if body.encoding_format == "base64" else hidden
        values += total * bundle.dimensions
    if body.return_attentions:
        out["attentions"] = [selected_attentions(r, layers, heads) for r in results]
        values += sum(a.size for a in out["attentions"])
    if strings is not None:
        out["tokens"] = strings
    out["usage"] = {"prompt_tokens": total, "total_tokens": total}
    return await json_response(ctx, out, values)
