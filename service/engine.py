"""The engine: everything a request needs (bundle, sessions, tokenizer, batcher), built whole at start-up,
checked and warmed before the service reports ready. Routes get it complete or not at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bundle import Bundle, BundleError, load_bundle

from .batcher import Batcher, BatchObserver
from .runtime import Runtime
from .settings import Settings
from .tokenize import TextTokenizer

log = logging.getLogger("attnserve")


@dataclass(frozen=True)
class Engine:
    name: str  # the served name
    bundle: Bundle
    runtime: Runtime
    tokenizer: TextTokenizer | None  # None: the bundle has no tokenizer, requests send token ids
    batcher: Batcher


def build_engine(settings: Settings, path: Path, name: str | None = None,
                 observer: Callable[[str], BatchObserver] | None = None) -> Engine:
    """Bundle, sessions (checked against config.json), tokenizer, vocabulary check, warm-up, batcher.
    ``observer`` gives the batch metrics' observer for the served name."""
    bundle = load_bundle(path, settings.verify_checksums)
    name = name or bundle.name
    settings = settings.for_model(name)
    if settings.max_batch_tokens < bundle.max_length:
        raise BundleError(f"max_batch_tokens ({settings.max_batch_tokens}) is below the model's maximum length "
                          f"({bundle.max_length}): a long input could never run; raise ATTNSERVE_MAX_BATCH_TOKENS")
    try:
        runtime = Runtime(bundle, settings)
    except BundleError as exc:
        if name in settings.model_precision:  # say which model's own precision was refused
            raise BundleError(f"model {name} (ATTNSERVE_MODEL_PRECISION {name}={settings.precision}): {exc}") from None
        raise
    tokenizer = TextTokenizer(bundle.tokenizer_file, bundle.max_length) if bundle.tokenizer_file else None
    runtime.check_vocabulary()
    if settings.warmup:
        runtime.warmup(settings.max_batch_size)
    plan = runtime.plan
    max_batch_tokens = settings.max_batch_tokens
    if bundle.task.kind == "sparse":
        # SPLADE's logits: batch tokens x vocabulary floats; the same budget as the attention scores bounds them
        logits_cap = int(settings.max_batch_scores_mb * 2**20 / (4 * bundle.vocab_size))
        max_batch_tokens = max(bundle.max_length, min(max_batch_tokens, logits_cap))
    batcher = Batcher(
        runtime.run,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_queue=settings.max_queue_sequences,
        max_queue_delay_s=settings.max_queue_delay_ms / 1000,
        max_padding_ratio=plan.padding_ratio,
        observer=observer(name) if observer is not None else None,
        workers=plan.workers,
        window=plan.window,
        lone_runner=runtime.run_alone if plan.lone_threads else None,
        # float32 probabilities of every layer and head per (query, key) cell
        max_attention_cells=max(1, int(settings.max_attention_batch_mb * 2**20
                                       / (4 * bundle.n_layers * bundle.n_heads))),
        # one layer's float32 scores per (query, key) cell and head, a query block at a time
        max_score_cells=max(1, int(settings.max_batch_scores_mb * 2**20 * bundle.query_chunks
                                   / (4 * bundle.n_heads))),
    )
    batcher.start()
    engine = Engine(name, bundle, runtime, tokenizer, batcher)
    log.info("ready: %s (task %s, %d dims, max %d tokens) from %s", engine.name, bundle.task.name, bundle.dimensions,
             bundle.max_length, bundle.path)
    return engine


def build_engines(settings: Settings, observer: Callable[[str], BatchObserver] | None = None) -> dict[str, Engine]:
    """Every served model, in order (the first is the default); names must differ. A model that fails to load
    stops the ones already built."""
    engines: dict[str, Engine] = {}
    try:
        for name, path in settings.served_models():
            engine = build_engine(settings, path, name, observer)
            if engine.name in engines:
                engine.batcher.stop(1)
                raise BundleError(f"two models are served as {engine.name!r} ({engines[engine.name].bundle.path} and "
                                  f"{path}); name one with NAME=DIR in ATTNSERVE_MODEL / --model")
            engines[engine.name] = engine
        unknown = sorted(set(settings.model_precision) - set(engines))
        if unknown:
            raise BundleError(f"ATTNSERVE_MODEL_PRECISION names {', '.join(unknown)}, which is not served (served: "
                              f"{', '.join(engines)})")
    except BaseException:
        for engine in engines.values():
            engine.batcher.stop(1)
        raise
    return engines
