"""Prometheus metrics, one registry per app (so tests can build many apps), all prefixed attnserve_."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536)
_RATIO = (1.0, 1.05, 1.1, 1.25, 1.5, 2, 3, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # model: the served model that answered ("" for routes of no model, and for a model name not served, so a
        # client's text never becomes a label)
        self.requests = Counter("attnserve_requests", "HTTP requests by route, status and model",
                                ["route", "status", "model"], registry=r)
        self.request_seconds = Histogram("attnserve_request_duration_seconds", "Request duration",
                                         ["route", "model"], buckets=_LATENCY, registry=r)
        self.tokenize_seconds = Histogram("attnserve_tokenize_duration_seconds", "Tokenization per request",
                                          buckets=_LATENCY, registry=r)
        self.answer_values = Gauge("attnserve_answer_values",
                                   "Numbers in large answers being computed or sent (max_answer_values)", registry=r)
        self.tokenize_chars = Gauge("attnserve_tokenize_queue_chars",
                                    "Characters admitted to the worker pool's tokenizing, waiting or running",
                                    registry=r)
        # per model (several models may be served): the batch-level series carry a `model` label
        m = ["model"]
        self.queue_seconds = Histogram("attnserve_queue_duration_seconds", "Wait from queueing to batch start", m,
                                       buckets=_LATENCY, registry=r)
        self.inference_seconds = Histogram("attnserve_inference_duration_seconds", "ONNX Runtime call per batch", m,
                                           buckets=_LATENCY, registry=r)
        self.serialize_seconds = Histogram("attnserve_serialize_duration_seconds", "Response serialization",
                                           buckets=_LATENCY, registry=r)
        self.depth = Gauge("attnserve_queue_depth", "Sequences waiting to be batched", m, registry=r)
        self.batch_size = Histogram("attnserve_batch_size", "Sequences per batch", m, buckets=_SIZES, registry=r)
        self.batch_tokens = Histogram("attnserve_batch_tokens", "Padded tokens per batch (size x longest)", m,
                                      buckets=_TOKENS, registry=r)
        self.padding_ratio = Histogram("attnserve_padding_ratio", "Padded tokens / real tokens per batch", m,
                                       buckets=_RATIO, registry=r)
        self.sequences = Counter("attnserve_sequences", "Sequences run", m, registry=r)
        self.tokens = Counter("attnserve_tokens", "Real tokens run", m, registry=r)
        self.model_info = Gauge("attnserve_model_info", "1 per served model, with its task, engine and precision",
                                ["model", "task", "engine", "precision"], registry=r)

    def observer(self, model: str) -> ModelObserver:
        return ModelObserver(self, model)


class ModelObserver:
    """The BatchObserver of one model's batcher, called from its inference threads (prometheus_client is
    thread-safe): the batch-level series with this model's label."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.depth = metrics.depth.labels(model)
        self.batch_size, self.batch_tokens = metrics.batch_size.labels(model), metrics.batch_tokens.labels(model)
        self.padding_ratio, self.inference_seconds = (metrics.padding_ratio.labels(model),
                                                      metrics.inference_seconds.labels(model))
        self.sequences, self.tokens = metrics.sequences.labels(model), metrics.tokens.labels(model)
        self.queue_seconds = metrics.queue_seconds.labels(model)

    def queue_depth(self, depth: int) -> None:
        self.depth.set(depth)

    def batch(self, size: int, padded_tokens: int, real_tokens: int, waits: list[float], seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_tokens.observe(padded_tokens)
        self.padding_ratio.observe(padded_tokens / max(real_tokens, 1))
        self.inference_seconds.observe(seconds)
        self.sequences.inc(size)
        self.tokens.inc(real_tokens)
        for wait in waits:
            self.queue_seconds.observe(wait)
