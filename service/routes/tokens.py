"""POST /tokenize and POST /decode, in the shapes of text-embeddings-inference (TEI): token ids, strings,
character offsets and special-token flags of texts; texts of token ids. For budgeting context and debugging."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from bundle.task import TASKS

from ..context import get_engine
from ..errors import ApiError
from ..limits import check_inputs, token_arrays
from ..respond import json_response
from ..schemas import DecodeRequest, TokenizeRequest
from ..tokenize import INLINE_TOKENIZE_CHARS, TooManyTokens, prompt_text
from .encode import ERRORS

router = APIRouter()


def _tokenizer(request: Request, model: str | None):
    ctx, engine = get_engine(request, model, TASKS)
    if engine.tokenizer is None:
        raise ApiError(422, "this model's bundle has no tokenizer: it takes token ids only", "inputs")
    return ctx, engine, engine.tokenizer


@router.post("/tokenize", responses=ERRORS)
async def tokenize(body: TokenizeRequest, request: Request) -> Response:
    """Per text, its tokens: ``id``, ``text``, ``special``, ``start`` and ``stop`` (character offsets into the
    text as sent, the prompt excluded; special tokens have none: null). Texts longer than the model's maximum
    are tokenized whole (this route runs no model); the tokens of one request are capped by
    max_tokens_per_request."""
    ctx, engine, tokenizer = _tokenizer(request, body.model)
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    check_inputs("inputs", len(texts), texts, ctx.settings)
    prompt = prompt_text(engine, body.prompt_name, True)
    full = [prompt + t for t in texts]
    chars = sum(map(len, full))
    limit = ctx.settings.max_tokens_per_request
    try:
        if chars <= INLINE_TOKENIZE_CHARS:
            encodings = tokenizer.details(full, body.add_special_tokens, limit)
        else:
            encodings = await ctx.tokenize(request, chars, tokenizer.details, full, body.add_special_tokens, limit)
    except TooManyTokens as exc:
        counted = "in all" if exc.texts == len(full) else f"in the first {exc.texts} of {len(full)} texts"
        raise ApiError(422, f"inputs: {exc.tokens} tokens {counted}; at most {limit} per request "
                            "(max_tokens_per_request)", "inputs") from None
    shift = len(prompt)

    def token(e: Any, k: int) -> dict[str, Any]:
        special = bool(e.special_tokens_mask[k])
        start, stop = e.offsets[k]
        # offsets into the text as sent: the prompt's own tokens (and special tokens) have none
        inside = not special and start >= shift
        return {"id": e.ids[k], "text": e.tokens[k], "special": special,
                "start": start - shift if inside else None, "stop": stop - shift if inside else None}

    return await json_response(ctx, lambda: [[token(e, k) for k in range(len(e.ids))] for e in encodings],
                               5 * sum(len(e.ids) for e in encodings))


@router.post("/decode", responses=ERRORS)
async def decode(body: DecodeRequest, request: Request) -> Response:
    """Texts of token id lists (one list, or a list of lists): a list of strings, one per list."""
    ctx, engine, tokenizer = _tokenizer(request, body.model)
    lists = [body.ids] if body.ids and isinstance(body.ids[0], int) else body.ids
    check_inputs("ids", len(lists), None, ctx.settings)
    total = sum(map(len, lists))  # type: ignore[arg-type]
    if total > ctx.settings.max_tokens_per_request:
        raise ApiError(422, f"ids: {total} tokens in all; at most {ctx.settings.max_tokens_per_request} per "
                            "request (max_tokens_per_request)", "ids")
    # no cut at the model's maximum: decoding runs no model, and max_tokens_per_request bounds the work
    arrays = token_arrays("ids", lists, engine.bundle)  # type: ignore[arg-type]
    texts = tokenizer.decode([a.tolist() for a in arrays], body.skip_special_tokens)
    return await json_response(ctx, lambda: texts, total)
