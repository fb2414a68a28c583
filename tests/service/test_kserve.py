"""The Open Inference Protocol's tensor codec against hand-built bodies (JSON and the binary extension)."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from service.kserve import ProtocolError, read_request, requested_outputs, write_response


def binary_body(header: dict, *blobs: bytes) -> tuple[bytes, str]:
    head = orjson.dumps(header)
    return head + b"".join(blobs), str(len(head))


def test_bytes_and_int64_in_binary_and_json() -> None:
    words = ["hello", "Zürich", ""]
    raw = b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in words)
    ids = np.array([[2, 7, 3], [2, 9, 0]], dtype="<i8")
    body, n = binary_body({"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": len(raw)}},
        {"name": "input_ids", "datatype": "INT64", "shape": [2, 3], "parameters": {"binary_data_size": 48}},
        {"name": "attention_mask", "datatype": "INT32", "shape": [2, 3], "data": [[1, 1, 1], [1, 1, 0]]},
    ]}, raw, ids.tobytes())
    _, tensors = read_request(body, n)
    assert tensors["text"].data == words
    np.testing.assert_array_equal(tensors["input_ids"].data, ids)
    np.testing.assert_array_equal(tensors["attention_mask"].data, [[1, 1, 1], [1, 1, 0]])


@pytest.mark.parametrize(("header", "blob", "message"), [
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]},
     struct.pack("<I", 100) + b"abcde", "input 'text': BYTES element 0 runs past the data"),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]},
     struct.pack("<I", 2) + b"\xff\xfe", "input 'text': element 0 is not valid UTF-8 text"),
    ({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [1, 2.5]}]}, b"",
     "input 'input_ids': INT64 data must be integers"),
    ({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 1], "data": [2**63]}]}, b"",
     "input 'input_ids': a value does not fit INT64"),
    ({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3]}]}, b"",
     "input 'input_ids': 3 elements for shape [2, 2]"),
    ({"inputs": [{"name": "x", "datatype": "FP16", "shape": [1], "data": [1]}]}, b"",
     "input 'x': datatype 'FP16' is not one of BYTES, INT64, INT32, FP32"),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, b"\x00",
     "1 bytes of binary data belong to no input"),
    ({"inputs": "text"}, b"", "the request needs an 'inputs' list"),
], ids=["bytes-overrun", "bytes-not-utf8", "int-float", "int-overflow", "shape-mismatch", "dtype", "extra-bytes",
        "inputs-not-list"])
def test_bad_bodies_are_refused_with_a_reason(header: dict, blob: bytes, message: str) -> None:
    body, n = binary_body(header, blob)
    with pytest.raises(ProtocolError) as exc:
        read_request(body, n)
    assert str(exc.value) == message


def test_outputs_default_and_binary_flags() -> None:
    known, default = ["a", "b", "c"], ["a", "b"]
    assert requested_outputs({}, known, default) == {"a": False, "b": False}
    assert requested_outputs({"parameters": {"binary_data_output": True}}, known, default) == {"a": True, "b": True}
    assert requested_outputs({"outputs": [{"name": "c", "parameters": {"binary_data": True}}]}, known, default) == {
        "c": True}
    with pytest.raises(ProtocolError, match="unknown output 'd'; this model has a, b, c"):
        requested_outputs({"outputs": [{"name": "d"}]}, known, default)


def test_response_puts_binary_outputs_after_the_json_header() -> None:
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((1, 2), dtype=np.float32)
    pieces, n = write_response({"model_name": "m"}, [("a", a), ("b", b)], {"a": True, "b": False})
    body = b"".join(pieces)
    header = orjson.loads(body[:n])
    assert header["outputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
        {"name": "b", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 1.0]},
    ]
    np.testing.assert_array_equal(np.frombuffer(body[n:], dtype="<f4").reshape(2, 3), a)
