"""The Open Inference Protocol's (KServe v2) tensors: JSON and Triton's binary tensor extension, both ways.

A request body is a JSON header, followed, when the ``Inference-Header-Content-Length`` header says how long
that JSON is, by the raw bytes of every input whose parameters give a ``binary_data_size``, in input order.
BYTES elements are each a 4-byte little-endian length and the bytes; numbers are little-endian, row-major.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

HEADER = "inference-header-content-length"
NUMERIC = {"INT64": "<i8", "INT32": "<i4", "FP32": "<f4"}


class ProtocolError(Exception):
    """A request the protocol cannot read: 400 with ``{"error": message}``."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[str]  # numbers as an array of that shape, BYTES as decoded strings


def _shape(spec: dict[str, Any], name: str) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"input '{name}': shape must be a list of non-negative integers")
    return shape


def _strings(raw: bytes, name: str) -> list[str]:
    out, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input '{name}': BYTES element at byte {offset} has no complete length")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise ProtocolError(f"input '{name}': BYTES element {len(out)} runs past the data")
        try:
            out.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(f"input '{name}': element {len(out)} is not valid UTF-8 text") from None
        offset += size
    return out


def _flat(data: Any) -> list[Any]:
    """JSON tensor data may be flat or nested row-major lists."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def _tensor(spec: Any, blobs: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ProtocolError("every input needs a 'name'")
    name, datatype = spec["name"], spec.get("datatype")
    shape = _shape(spec, name)
    count = int(np.prod(shape)) if shape else 1
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if datatype == "BYTES":
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(blobs):
                raise ProtocolError(f"input '{name}': binary_data_size {size} runs past the body")
            values: list[str] = _strings(bytes(blobs[offset : offset + size]), name)
            offset += size
        else:
            values = _flat(spec.get("data"))
            if not all(isinstance(v, str) for v in values):
                raise ProtocolError(f"input '{name}': BYTES data must be strings")
        if len(values) != count:
            raise ProtocolError(f"input '{name}': {len(values)} elements for shape {shape}")
        return Tensor(name, datatype, shape, values), offset
    if datatype not in NUMERIC:
        raise ProtocolError(f"input '{name}': datatype {datatype!r} is not one of BYTES, INT64, INT32, FP32")
    dtype = np.dtype(NUMERIC[datatype])
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or offset + size > len(blobs):
            raise ProtocolError(f"input '{name}': binary_data_size {size} does not hold shape {shape} of "
                                f"{datatype}")
        array = np.frombuffer(blobs[offset : offset + size], dtype=dtype).reshape(shape)
        offset += size
    else:
        flat = _flat(spec.get("data"))
        if datatype != "FP32" and not all(type(v) is int for v in flat):
            raise ProtocolError(f"input '{name}': {datatype} data must be integers")
        if len(flat) != count:
            raise ProtocolError(f"input '{name}': {len(flat)} elements for shape {shape}")
        try:
            array = np.asarray(flat, dtype=dtype).reshape(shape)
        except (OverflowError, ValueError, TypeError):
            raise ProtocolError(f"input '{name}': a value does not fit {datatype}") from None
    return Tensor(name, datatype, shape, array), offset


def read_request(body: bytes, header_length: str | None) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The JSON header and its inputs by name."""
    if header_length is None:
        json_part, blobs = body, memoryview(b"")
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {header_length!r} is not a length within the "
                                "body")
        n = int(header_length)
        json_part, blobs = body[:n], memoryview(body)[n:]
    try:
        header = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        raise ProtocolError("the request's JSON is malformed") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise ProtocolError("the request needs an 'inputs' list")
    tensors: dict[str, Tensor] = {}
    offset = 0
    for spec in header["inputs"]:
        tensor, offset = _tensor(spec, blobs, offset)
        if tensor.name in tensors:
            raise ProtocolError(f"input '{tensor.name}' is given twice")
        tensors[tensor.name] = tensor
    if offset != len(blobs):
        raise ProtocolError(f"{len(blobs) - offset} bytes of binary data belong to no input")
    return header, tensors


def requested_outputs(header: dict[str, Any], known: list[str], default: list[str]) -> dict[str, bool]:
    """Output name -> sent as binary. No list: the default outputs, binary when binary_data_output is set."""
    everything_binary = bool((header.get("parameters") or {}).get("binary_data_output", False))
    specs = header.get("outputs")
    if specs is None:
        return dict.fromkeys(default, everything_binary)
    if not isinstance(specs, list):
        raise ProtocolError("'outputs' must be a list")
    out: dict[str, bool] = {}
    for spec in specs:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in known:
            raise ProtocolError(f"unknown output {name!r}; this model has {', '.join(known)}")
        out[name] = bool((spec.get("parameters") or {}).get("binary_data", everything_binary))
    return out


def write_response(head: dict[str, Any], outputs: list[tuple[str, np.ndarray]],
                   binary: dict[str, bool]) -> tuple[list[bytes], int | None]:
    """Body pieces (JSON header, then the binary outputs) and the JSON header's length when any is binary."""
    specs, blobs = [], []
    for name, array in outputs:
        spec: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if binary[name]:
            raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            spec["data"] = np.ascontiguousarray(array, dtype=np.float32).ravel()
        specs.append(spec)
    json_part = orjson.dumps({**head, "outputs": specs}, option=orjson.OPT_SERIALIZE_NUMPY)
    return [json_part, *blobs], (len(json_part) if blobs else None)
