"""POST /classify and /rerank (also /v1/rerank): the scores of classification bundles, one label being a
cross-encoder's relevance. Pairs run through the same dynamic batcher as everything else."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from ..context import get_engine
from ..limits import attention_selection, check_attention_values
from ..pool import keep_attentions
from ..respond import json_response
from ..schemas import ClassifyRequest, RerankRequest
from ..submit import ClientGone, run_sequences
from ..tokenize import pairs_from
from .encode import ERRORS

router = APIRouter()
_ERRORS = {**ERRORS, 404: {"description": "Unknown model"}}


def scores_of(logits: np.ndarray, activation: str, raw: bool) -> np.ndarray:
    """(n_labels,) logits -> what the model's config says they mean: softmax over exclusive labels, sigmoid per
    label (one-label cross-encoders, multi-label classifiers), or as they are (regression, raw_scores)."""
    logits = logits.astype(np.float64)
    if raw or activation == "none":
        return logits
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


@router.post("/classify", responses=_ERRORS)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Label scores for texts or text pairs, best first; see the README."""
    ctx, engine = get_engine(request, body.model, ("classify",), "/classify")
    task = engine.bundle.task
    items: list[str | tuple[str, str]] = list(body.texts)
    layers, heads = (attention_selection(body.attention_layers, body.attention_heads, engine.bundle)
                     if body.return_attentions else ([], None))
    sequences = await pairs_from(request, ctx, engine, "texts", items, body.truncate,
                                 details=body.return_attentions)
    attention_values = (check_attention_values(sequences, len(layers), len(heads) if heads else 1, ctx.settings)
                        if body.return_attentions else 0)
    ctx.answers.reserve(request.scope, attention_values)
    try:
        results = await run_sequences(request, engine.batcher, sequences, body.return_attentions,
                                      ctx.settings.request_timeout_s,
                                      keep_attentions(layers, heads) if body.return_attentions else None)
    except ClientGone:
        return Response(status_code=499)
    total = sum(len(s) for s in sequences)
    top_k = min(body.top_k or len(task.labels), len(task.labels))

    def build() -> dict[str, Any]:
        out = []
        for r in results:
            assert r.scores is not None
            scores = scores_of(r.scores, task.activation, body.raw_scores)
            order = np.argsort(-scores, kind="stable")[:top_k]
            out.append([{"label": task.labels[j], "score": float(scores[j])} for j in order])
        answer: dict[str, Any] = {"model": engine.name, "results": out}
        if body.return_attentions:
            answer.update(tokens=[p.tokens for p in sequences], segments=[p.segments for p in sequences],
                          attentions=[r.attentions for r in results])
        answer["usage"] = {"prompt_tokens": total, "total_tokens": total}
        return answer

    return await json_response(ctx, build, len(results) * top_k + attention_values)


@router.post("/rerank", responses=_ERRORS)
@router.post("/v1/rerank", responses=_ERRORS)
async def rerank(body: RerankRequest, request: Request) -> Response:
    """Documents sorted by a cross-encoder's relevance to the query. ``documents`` (Cohere, Jina) answers
    ``{"results": [{"index", "relevance_score", "document"}]}``; ``texts`` (TEI) answers TEI's
    ``[{"index", "score", "text"}]``."""
    ctx, engine = get_engine(request, body.model, ("rerank",), "/rerank")
    task = engine.bundle.task
    documents = body.document_texts
    sequences = await pairs_from(request, ctx, engine, "documents" if body.documents is not None else "texts",
                                 [(body.query, d) for d in documents], body.truncate)
    try:
        results = await run_sequences(request, engine.batcher, sequences, False, ctx.settings.request_timeout_s)
    except ClientGone:
        return Response(status_code=499)
    # one score per document, in document order: a classify bundle's every result has its logits
    scores = np.array([scores_of(r.scores, task.activation, body.raw_scores)[0] for r in results])  # type: ignore[arg-type]
    order = np.argsort(-scores, kind="stable")[: body.top_n or len(scores)]
    total = sum(len(s) for s in sequences)
    if body.texts is not None:  # TEI
        tei = [{"index": int(i), "score": float(scores[i]), **({"text": documents[i]} if body.return_text else {})}
               for i in order]
        return await json_response(ctx, lambda: tei, len(order))  # type: ignore[arg-type, return-value]
    with_docs = body.return_documents is True
    out = [{"index": int(i), "relevance_score": float(scores[i]),
            **({"document": {"text": documents[i]}} if with_docs else {})} for i in order]
    return await json_response(ctx, lambda: {"model": engine.name, "results": out,
                                             "usage": {"total_tokens": total}}, len(order))
