"""GET /v1/models: the served model, OpenAI-style (behind API keys when they are set)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..context import loaded_context
from ..engine import Engine

router = APIRouter()


def _family(architecture: dict) -> dict:
    """How the model encodes positions, as the bundle declares it (the service itself has no families)."""
    scheme = str(architecture.get("positional", "learned"))
    if architecture.get("relative_buckets"):
        scheme += "+relative_bias"
    if architecture.get("local_window"):
        scheme += f"+sliding_window_{architecture['local_window']}"
    return {"position_encoding": scheme, "token_types": int(architecture.get("type_vocab_size", 0))}


@router.get("/v1/models")
async def models(request: Request) -> dict:
    """Every served model (the first is the default), OpenAI-style, with what a client needs to know about it:
    its task (embed, rerank, classify, sparse) says which routes it answers."""
    ctx = loaded_context(request)  # whatever the default model's task
    return {"object": "list", "data": [_describe(engine) for engine in ctx.engines.values()]}


def _describe(engine: Engine) -> dict:
    bundle, plan, task = engine.bundle, engine.runtime.plan, engine.bundle.task
    return {
        "id": engine.name,
        "object": "model",
        "owned_by": "attnserve",
        "task": task.name,
        **({"labels": list(task.labels)} if task.kind == "classify" else {}),
        "version": bundle.config.get("version"),
        "dimensions": bundle.dimensions,
        "max_length": bundle.max_length,
        "layers": bundle.n_layers,
        "heads": bundle.n_heads,
        "vocab_size": bundle.vocab_size,
        "pooling": bundle.pooling,
        "normalize": bundle.normalize,
        "matryoshka_dimensions": bundle.matryoshka_dimensions,
        "prompts": bundle.prompts,
        "default_prompt_name": bundle.default_prompt_name,
        "architecture": _family(bundle.config.get("architecture", {})),
        "has_tokenizer": engine.tokenizer is not None,
        "execution_provider": plan.provider,
        "engine": engine.runtime.choice.engine,
        "precision": engine.runtime.choice.precision,
        **({"fidelity": engine.runtime.choice.fidelity} if engine.runtime.choice.fidelity else {}),
        "graphs": {"default": plan.default_graph, "attentions": "attentions", "batches": plan.batch_graph},
    }
