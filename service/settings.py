"""The one settings object of the service: every field is also an ATTNSERVE_* environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Precision = Literal["fp32", "bf16", "fp16", "int8"]  # one list for the service's and each model's precision


class Settings(BaseSettings):
    """Built inside create_app(settings), never at import, so tests can build apps with other settings."""

    model_config = SettingsConfigDict(env_prefix="ATTNSERVE_", protected_namespaces=(), extra="forbid")

    # --- the model and the runtime
    model: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path("build/minilm")],
        description="Model bundle folder (config.json + ONNX graphs); several, comma-separated (or --model given "
        "again), serve several models, each with its own batcher and sessions: requests pick one by `model`, the "
        "first is the default. NAME=DIR serves a bundle under NAME.",
    )
    served_name: str | None = Field(None, description="Name to serve the first model under (default: the bundle's).")
    provider: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="Execution provider: auto probes CUDA and falls back to CPU with one log line."
    )
    precision: Precision = Field(
        "fp32", description="fp32 (exact); bf16 (OpenVINO, only on a CPU with AMX or AVX512-BF16, refused elsewhere); "
        "fp16 (the bundle's fp16 graph, only on CUDA); a reduced precision starts only when its worst cosine against "
        "fp32, measured at start, reaches min_fidelity_cos; int8 is refused (never reached the bar).",
    )
    model_precision: Annotated[dict[str, Precision], NoDecode] = Field(
        default_factory=dict, description="Precision per served model, NAME=PRECISION comma-separated (e.g. "
        "minilm=bf16,reranker=fp32); a model not named here runs at `precision`.",
    )
    engine: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto", description="What runs the graphs: auto is ONNX Runtime for fp32 and OpenVINO for bf16; openvino "
        "needs the openvino package (pip install 'attnserve[openvino]').",
    )
    openvino_length_step: int = Field(
        1, ge=1, le=512, description="OpenVINO: padded batches are padded to a multiple of this many tokens, so "
        "that fewer input shapes occur (it prepares kernels per shape); 1: to the longest input only, measured "
        "fastest once warm (docs/performance.md). Packed batches (the default on a CPU) follow "
        "openvino_packed_buckets.",
    )
    openvino_packed_buckets: bool = Field(
        True, description="OpenVINO: packed batches are rounded up to a bounded set of shapes (width to a multiple "
        "of 8, tokens of 32, rows exact; the extra slots are padding). OpenVINO keeps kernels for every input shape "
        "it meets: exact shapes grew its memory ~0.6 MB a batch without end, and ran 17% slower (docs/performance.md)",
    )
    openvino_batch_attention: Literal["fused", "unfused"] = Field(
        "fused", description="OpenVINO: how the batch workers' sessions compile attention. fused: the CPU plugin's "
        "attention subgraph, as a batch run alone keeps; its memory levels off. unfused: separate MatMul and Softmax "
        "kernels, which run on AMX in bf16 (+4-5% through the service at 16 x 8 and 64 clients), but every new "
        "attention layout (rows x width) keeps ~1.2 MB for good, every layer's full scores are materialized, and "
        "clients choose the layouts: for trusted traffic (docs/performance.md)",
    )
    bf16_padding_ratio: float = Field(
        1.5, ge=1.0, description="max_padding_ratio for bf16 batches: a larger batch is worth more there than its "
        "padding costs (in process, batch 8 runs 2x batch 1 in bf16, 1.15x in fp32).",
    )
    bf16_batch_window: int = Field(
        64, ge=1, le=4096, description="batch_window for bf16 batches, so that batches larger than 16 can form.",
    )
    cuda_padding_ratio: float = Field(
        1.5, ge=1.0, description="max_padding_ratio for batches on CUDA, where a GPU pads almost for free: on an H100, "
        "MiniLM at 16 clients x 8 sentences ran 2.0x the service's fp32 throughput with 1.5 and a window of 64.",
    )
    cuda_batch_window: int = Field(
        64, ge=1, le=4096, description="batch_window for batches on CUDA, so that batches larger than 16 can form.",
    )
    min_fidelity_cos: float = Field(
        0.9999, gt=0, le=1, description="A reduced precision starts only if its worst cosine against fp32, on the "
        "service's fidelity sentences, is at least this.",
    )
    graph: Literal["auto", "default", "optimized", "packed"] = Field(
        "auto", description="Graph for requests without attentions: auto takes the optimized one when present, and "
        "on a CPU (ONNX Runtime; OpenVINO in fp32 and bf16) runs batches on the packed graph (no padding outside "
        "attention) when the bundle has one.",
    )
    inference_workers: int = Field(
        0, ge=0, le=64,
        description="Threads that each run one batch at a time on the shared sessions (0: 1 on CUDA; on CPU 2 when "
        "there are at least 2 cores: measured 1.2x the throughput of one call on all cores at 64 clients).",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime threads inside one operator (0: cores / inference workers, at least 1)."
    )
    lone_batch_all_cores: bool = Field(
        True, description="On a CPU with several inference workers, a batch that runs alone (nothing else queued "
        "or running) uses every core: at one client MiniLM answers in ~6 ms instead of ~9.",
    )
    inter_op_threads: int = Field(1, ge=0, description="ONNX Runtime threads across operators (0: default).")
    warmup: bool = Field(True, description="Run warm-up inferences before reporting ready.")
    verify_checksums: bool = Field(True, description="Check the bundle files' sha256 against config.json at start.")

    # --- HTTP
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Log level.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys; when set, inference routes need 'Authorization: Bearer <key>'.",
    )

    explorer: bool = Field(True, description="Serve the attention explorer page at /explorer (and / redirects).")

    # --- dynamic batching
    max_batch_size: int = Field(32, ge=1, le=4096, description="Sequences per ONNX Runtime call.")
    max_batch_tokens: int = Field(
        16384, ge=1, description="Padded tokens per call (batch size x longest sequence in it)."
    )
    max_queue_delay_ms: float = Field(
        0.0, ge=0, le=1000, description="How long a batch may wait to fill; 0: an idle engine runs at once."
    )
    batch_window: int = Field(
        16, ge=1, le=4096,
        description="Only the oldest this many waiting sequences may join a batch: a smaller window lets fewer "
        "sequences jump the queue (lower tail latency), a larger one groups by length better.",
    )
    max_padding_ratio: float = Field(
        1.1, ge=1.0,
        description="A batch grows only while padded tokens stay within this factor of real tokens.",
    )
    packed_padding_ratio: float = Field(
        1.5, ge=1.0,
        description="max_padding_ratio for batches on the packed graph, where padding costs only inside attention: "
        "longer batches form, and sequences join in arrival order more often.",
    )
    max_queue_sequences: int = Field(
        1024, ge=1, description="Sequences waiting at most; beyond it requests get 503 with Retry-After."
    )
    request_timeout_s: float = Field(30.0, gt=0, description="A request not answered by then gets 504.")
    max_tokenize_queue_chars: int = Field(
        8_000_000, ge=1,
        description="Characters waiting or being tokenized in the worker pool at most (requests whose texts "
        "have over 2,000 characters in all go there); a request that would exceed it gets 503 with Retry-After "
        "at once (a request alone is always admitted).",
    )

    # --- limits per request, enforced before anything is queued
    max_inputs_per_request: int = Field(256, ge=1, description="Texts or token lists per request.")
    max_chars_per_text: int = Field(
        20000, ge=1, description="Characters per text, checked before tokenizing."
    )
    max_tokens_per_request: int = Field(32768, ge=1, description="Tokens over all inputs of one request.")
    max_attention_values: int = Field(
        8_000_000, ge=1,
        description="Attention numbers in one response (layers x heads x tokens^2, summed); the default fits one "
        "full-length MiniLM input with every layer and head.",
    )
    max_body_bytes: int = Field(4_000_000, ge=1024, description="Request body size in bytes (413 beyond).")
    max_answer_values: int = Field(
        32_000_000, ge=1,
        description="Numbers in large answers (attentions, token embeddings, tensors; over 50,000 numbers each) "
        "being computed or sent at once; a request that would pass it gets 503 with Retry-After at once (a "
        "request alone is always admitted).",
    )
    max_json_values: int = Field(
        65_536, ge=1024,
        description="JSON values (numbers, strings, lists, objects) in one body, counted before parsing (413 beyond): "
        "parsing holds the event loop about 1 us per value, so this bounds the stall to ~70 ms. The default fits "
        "max_tokens_per_request token ids.",
    )
    max_batch_scores_mb: float = Field(
        512.0, gt=0,
        description="Attention scores one batch may hold for one layer (batch x heads x longest^2 x 4 bytes, divided "
        "by the graph's query blocks): long inputs run in smaller batches, alone at a long-context model's "
        "maximum. MiniLM's batches never reach the default.",
    )
    max_attention_batch_mb: float = Field(
        32.0, gt=0,
        description="Attention probabilities one batch may materialize (batch x layers x heads x longest^2 x 4 "
        "bytes, every layer and head, before the selection): longer requests run in smaller batches, so memory "
        "stays bounded by this, times inference workers, whatever clients ask for.",
    )

    # --- connections (uvicorn), each bounded so slow or idle clients cannot hold the server
    max_connections: int = Field(
        512, ge=1, description="Open connections at most; one more is closed at once (and requests over it get 503)."
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="Request line and headers in bytes; beyond it 431 and the connection is closed."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time for a connection to send a request's headers (idle ones included); then closed."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Time to receive a request's whole body once its headers are in; then 408."
    )
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="An idle keep-alive connection is closed after this.")
    send_timeout_s: float = Field(
        30.0, gt=0,
        description="Time a client may leave its answer unread once the server's write buffer is full; then the "
        "connection is dropped with what was not sent.",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str | Path):
            value = [p.strip() for p in str(value).split(",") if p.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("give at least one model bundle folder")
        return value

    def served_models(self) -> list[tuple[str | None, Path]]:
        """(name or None for the bundle's own, folder) per model, in order; NAME=DIR names one."""
        out: list[tuple[str | None, Path]] = []
        for i, path in enumerate(self.model):
            name, sep, folder = str(path).partition("=")
            if sep and name and "/" not in name:
                out.append((name, Path(folder)))
            else:
                out.append((self.served_name if i == 0 else None, path))
        return out

    def for_model(self, name: str) -> Settings:
        """The settings one served model runs with: its own precision when ATTNSERVE_MODEL_PRECISION names it."""
        precision = self.model_precision.get(name)
        return self if precision in (None, self.precision) else self.model_copy(update={"precision": precision})

    @field_validator("model_precision", mode="before")
    @classmethod
    def _split_precisions(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        out: dict[str, str] = {}
        for item in (i.strip() for i in value.split(",")):
            if not item:
                continue
            name, sep, precision = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{item!r} is not NAME=PRECISION")
            out[name.strip()] = precision.strip()
        return out

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value
