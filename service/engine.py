"""The engine: everything a request needs (bundle, sessions, tokenizer, batcher), built whole at start-up,
checked and warmed before the service reports ready. Routes get it complete or not at all."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def build_engine(settings: Settings, observer: BatchObserver | None = None) -> Engine:
    """Bundle, sessions (checked against config.json), tokenizer, vocabulary check, warm-up, batcher."""
    bundle = load_bundle(settings.model, settings.verify_checksums)
    if settings.max_batch_tokens < bundle.max_length:
        raise BundleError(f"max_batch_tokens ({settings.max_batch_tokens}) is below the model's maximum length "
                          f"({bundle.max_length}): a long input could never run; raise ATTNSERVE_MAX_BATCH_TOKENS")
    runtime = Runtime(bundle, settings)
    tokenizer = TextTokenizer(bundle.tokenizer_file, bundle.max_length) if bundle.tokenizer_file else None
    runtime.check_vocabulary()
    if settings.warmup:
        runtime.warmup(settings.max_batch_size)
    plan = runtime.plan
    batcher = Batcher(
        runtime.run,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_queue=settings.max_queue_sequences,
        max_queue_delay_s=settings.max_queue_delay_ms / 1000,
        max_padding_ratio=plan.padding_ratio,
        observer=observer,
        workers=plan.workers,
        window=settings.batch_window,
        lone_runner=runtime.run_alone if plan.lone_threads else None,
        # float32 probabilities of every layer and head per (query, key) cell
        max_attention_cells=max(1, int(settings.max_attention_batch_mb * 2**20
                                       / (4 * bundle.n_layers * bundle.n_heads))),
        # one layer's float32 scores per (query, key) cell and head, a query block at a time
        max_score_cells=max(1, int(settings.max_batch_scores_mb * 2**20 * bundle.query_chunks
                                   / (4 * bundle.n_heads))),
    )
    batcher.start()
    engine = Engine(settings.served_name or bundle.name, bundle, runtime, tokenizer, batcher)
    log.info("ready: %s (%d dims, max %d tokens) from %s", engine.name, bundle.dimensions, bundle.max_length,
             bundle.path)
    return engine
