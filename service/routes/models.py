"""GET /v1/models: the served model, OpenAI-style (behind API keys when they are set)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..context import get_engine

router = APIRouter()


@router.get("/v1/models")
async def models(request: Request) -> dict:
    """The served model, OpenAI-style, with what a client needs to know about it."""
    _, engine = get_engine(request)
    bundle, plan = engine.bundle, engine.runtime.plan
    return {
        "object": "list",
        "data": [{
            "id": engine.name,
            "object": "model",
            "owned_by": "attnserve",
            "version": bundle.config.get("version"),
            "dimensions": bundle.dimensions,
            "max_length": bundle.max_length,
            "layers": bundle.n_layers,
            "heads": bundle.n_heads,
            "vocab_size": bundle.vocab_size,
            "pooling": bundle.pooling,
            "normalize": bundle.normalize,
            "has_tokenizer": engine.tokenizer is not None,
            "execution_provider": plan.provider,
            "graphs": {"default": plan.default_graph, "attentions": "attentions", "batches": plan.batch_graph},
        }],
    }
