"""The Open Inference Protocol (KServe v2), as Triton, KServe and Seldon speak it: health, metadata and infer,
through the same tokenizer, limits and dynamic batcher as /encode. Errors are ``{"error": message}``.

Inputs: ``text`` (BYTES, [n]) or ``input_ids`` (INT64 or INT32, [n, length]) with an optional
``attention_mask`` of the same shape (1 for real tokens, first). Outputs: ``pooled`` [n, d] (the bundle's
pooling and normalization, as /encode's embeddings), ``last_hidden_state`` [n, longest, d] and, only when
asked for, ``attentions`` [n, layers, heads, longest, longest]; shorter inputs are zero-padded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from ..answers import SMALL_ANSWER
from ..context import get_context, loaded_context, served_model
from ..engine import Engine
from ..errors import ApiError
from ..kserve import HEADER, ProtocolError, Tensor, read_request, requested_outputs, write_response
from ..pool import pooled_vector
from ..respond import Chunks
from ..settings import Settings
from ..submit import ClientGone, run_sequences
from ..tokenize import sequences_from

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe v2)"])
VERSION = "1"
OUTPUTS = ["pooled", "last_hidden_state", "attentions"]
DEFAULT_OUTPUTS = ["pooled", "last_hidden_state"]  # attentions cost length^2: only when asked for


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "attnserve", "version": "0.1.0", "extensions": ["binary_tensor_data"]}


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    is_ready = get_context(request).ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


def _model(request: Request, name: str, version: str | None) -> Engine:
    ctx = loaded_context(request)  # 503 while loading; the default model may have any task
    engine = ctx.engines.get(name)
    if engine is None or version not in (None, VERSION):
        served = ", ".join(repr(n) for n in ctx.engines)
        raise ApiError(404, f"unknown model {name[:100]!r} version {(version or VERSION)[:20]!r}; this server serves "
                            f"{served} version {VERSION!r}")
    served_model(request, engine)
    if engine.bundle.task.kind != "embed":
        raise ApiError(400, f"model {engine.name!r} is a {engine.bundle.task.name} model; the /v2 routes serve "
                            "embedding models")
    return engine


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> dict[str, Any]:
    engine = _model(request, name, version)
    b = engine.bundle
    return {
        "name": engine.name, "versions": [VERSION], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]},
                   {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
                   {"name": "attention_mask", "datatype": "INT64", "shape": [-1, -1]}],
        "outputs": [{"name": "pooled", "datatype": "FP32", "shape": [-1, b.dimensions]},
                    {"name": "last_hidden_state", "datatype": "FP32", "shape": [-1, -1, b.dimensions]},
                    {"name": "attentions", "datatype": "FP32", "shape": [-1, b.n_layers, b.n_heads, -1, -1]}],
    }


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> dict[str, Any]:
    engine = _model(request, name, version)
    return {"name": engine.name, "ready": get_context(request).ready}


def _token_lists(ids: Tensor, mask: Tensor | None) -> list[list[int]]:
    if len(ids.shape) != 2:
        raise ProtocolError(f"input 'input_ids': shape must be [batch, length], not {ids.shape}")
    array = np.asarray(ids.data)
    if mask is None:
        return array.tolist()
    m = np.asarray(mask.data)
    if list(m.shape) != list(array.shape) or not np.isin(m, (0, 1)).all():
        raise ProtocolError("input 'attention_mask': 0s and 1s of input_ids' shape")
    lengths = m.sum(axis=1)
    if (m != (np.arange(m.shape[1]) < lengths[:, None])).any():
        raise ProtocolError("input 'attention_mask': each row's real tokens (1) must come first")
    return [row[:n].tolist() for row, n in zip(array, lengths, strict=True)]


def _padded_hidden(rows: list[np.ndarray], width: int) -> np.ndarray:
    """(n_i, d) per input -> (batch, width, d), zero-padded."""
    out = np.zeros((len(rows), width, rows[0].shape[-1]), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _padded_attentions(rows: list[np.ndarray], width: int) -> np.ndarray:
    """(layers, heads, n_i, n_i) per input -> (batch, layers, heads, width, width), zero-padded."""
    out = np.zeros((len(rows), *rows[0].shape[:2], width, width), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :, :, : r.shape[-1], : r.shape[-1]] = r
    return out


def _padded_values(n: int, longest: int, outputs: dict[str, bool], engine: Engine, settings: Settings) -> int:
    """This protocol's tensors are padded to the longest input, so one long input among many short ones would
    make the answer far larger than the work: the padded sizes are held to the limits /encode applies to real
    tokens (max_tokens_per_request) and to attention values (max_attention_values; the padded count is never
    below the real one, so that limit holds too). Returns the numbers the answer will hold."""
    bundle = engine.bundle
    values = n * bundle.dimensions if "pooled" in outputs else 0
    if "last_hidden_state" in outputs:
        if n * longest > settings.max_tokens_per_request:
            raise ApiError(422, f"last_hidden_state: {n} inputs padded to {longest} tokens make {n * longest} rows; "
                                f"at most {settings.max_tokens_per_request} (max_tokens_per_request). Send inputs "
                                "of similar lengths together, or ask only for pooled")
        values += n * longest * bundle.dimensions
    if "attentions" in outputs:
        attention = n * longest**2 * bundle.n_layers * bundle.n_heads
        if attention > settings.max_attention_values:
            raise ApiError(422, f"attentions: {n} inputs padded to {longest} tokens make {attention} attention "
                                f"values; at most {settings.max_attention_values} (max_attention_values)")
        values += attention
    return values


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    engine = _model(request, name, version)
    ctx = get_context(request)
    try:
        header, tensors = read_request(await request.body(), request.headers.get(HEADER))
        outputs = requested_outputs(header, OUTPUTS, DEFAULT_OUTPUTS)
        parameters = header.get("parameters") or {}
        truncate = parameters.get("truncate")
        if truncate is not None and not isinstance(truncate, bool):
            raise ProtocolError("parameter 'truncate' must be true or false")
        unknown = sorted(set(tensors) - {"text", "input_ids", "attention_mask"})
        if unknown:
            raise ProtocolError(f"unknown input {unknown[0]!r}; this model takes text, or input_ids and attention_mask")
        if ("text" in tensors) == ("input_ids" in tensors):
            raise ProtocolError("give exactly one of the inputs 'text' (BYTES) or 'input_ids' (INT64)")
        if "text" in tensors:
            if len(tensors["text"].shape) != 1:
                raise ProtocolError(f"input 'text': shape must be [batch], not {tensors['text'].shape}")
            texts: list[str] | None = tensors["text"].data  # type: ignore[assignment]
            token_lists = None
        else:
            texts, token_lists = None, _token_lists(tensors["input_ids"], tensors.get("attention_mask"))
    except ProtocolError as exc:
        raise ApiError(400, str(exc)) from None
    kind = "text" if texts is not None else "input_ids"
    sequences, _ = await sequences_from(request, ctx, engine, kind, texts, token_lists, truncate)
    wants_attention = "attentions" in outputs
    bundle = engine.bundle
    longest = max(len(s) for s in sequences)
    values = _padded_values(len(sequences), longest, outputs, engine, ctx.settings)
    ctx.answers.reserve(request.scope, values)
    try:
        results = await run_sequences(request, engine.batcher, sequences, wants_attention,
                                      ctx.settings.request_timeout_s)
    except ClientGone:
        return Response(status_code=499)

    def build() -> tuple[list[bytes], int | None]:
        arrays = {
            "pooled": lambda: np.stack([pooled_vector(r, bundle.pooling, bundle.pooling, bundle.normalize)
                                        for r in results]),
            "last_hidden_state": lambda: _padded_hidden([r.hidden for r in results], longest),
            "attentions": lambda: _padded_attentions([r.attentions for r in results], longest),  # type: ignore[misc]
        }
        head = {"model_name": engine.name, "model_version": VERSION}
        if "id" in header:
            head["id"] = header["id"]
        return write_response(head, [(o, arrays[o]()) for o in outputs], outputs)

    pieces, json_length = await ctx.offload(build) if values > SMALL_ANSWER else build()
    if json_length is None:
        return Chunks(pieces, "application/json")
    return Chunks(pieces, "application/octet-stream", {"Inference-Header-Content-Length": str(json_length)})
