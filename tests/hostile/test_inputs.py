"""Text and id edge cases, wrong types on every field: each gets a 4xx naming the field, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.service.conftest import Server

# (id, path, raw JSON body, status, param)
RAW = [
    ("lone-surrogate", "/encode", rb'{"texts": ["ok", "a\ud800b"]}', 422, "texts[1]"),
    ("low-surrogate", "/encode", rb'{"texts": ["\udfff"]}', 422, "texts[0]"),
    ("openai-surrogate", "/v1/embeddings", rb'{"model": "tiny", "input": "\ud83d"}', 422, "input[0]"),
    ("openai-surrogate-list", "/v1/embeddings", rb'{"model": "tiny", "input": ["a", "\ud83d"]}', 422, "input[1]"),
    ("invalid-utf8", "/encode", b'{"texts": ["\xff\xfe"]}', 400, "body"),
    ("id-2^63", "/encode", b'{"tokens": [[2, 9223372036854775808]]}', 422, "tokens[0][1]"),
    ("id-minus-2^63-1", "/encode", b'{"tokens": [[-9223372036854775809]]}', 422, "tokens[0][0]"),
    ("id-10^30", "/encode", b'{"tokens": [[1], [1000000000000000000000000000000]]}', 422, "tokens[1][0]"),
    ("openai-id-2^64", "/v1/embeddings", b'{"model": "tiny", "input": [18446744073709551616]}', 422, "input[0][0]"),
    ("openai-ids-2^63", "/v1/embeddings", b'{"model": "tiny", "input": [[5, 9223372036854775808]]}', 422,
     "input[0][1]"),
    ("id-5000-digits", "/encode", b'{"tokens": [[' + b"9" * 5000 + b"]]}", 400, "body"),
    ("id-nan", "/encode", b'{"tokens": [[NaN]]}', 422, "tokens[0][0]"),
    ("id-infinity", "/encode", b'{"tokens": [[1e400]]}', 422, "tokens[0][0]"),
    ("id-float", "/encode", b'{"tokens": [[1.0]]}', 422, "tokens[0][0]"),
    ("id-bool", "/encode", b'{"tokens": [[true]]}', 422, "tokens[0][0]"),
    ("deep-nesting", "/encode", b'{"tokens": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400, "body"),
    ("body-null", "/encode", b"null", 422, "body"),
    ("body-number", "/encode", b"12", 422, "body"),
]

# Every field of /encode given a value of the wrong type
WRONG_TYPES = [
    ("texts", {"x": 1}, "texts"), ("texts", [["a"]], "texts[0]"), ("texts", [None], "texts[0]"),
    ("tokens", [[[1]]], "tokens[0][0]"), ("tokens", [{"a": 1}], "tokens[0]"), ("tokens", "abc", "tokens"),
    ("pooling", ["mean"], "pooling"), ("normalize", "true", "normalize"), ("truncate", 0, "truncate"),
    ("return_token_embeddings", None, "return_token_embeddings"), ("return_attentions", "1", "return_attentions"),
    ("attention_layers", [[0]], "attention_layers[0]"), ("attention_layers", 0, "attention_layers"),
    ("attention_heads", {"mean": True}, "attention_heads"), ("encoding_format", 1, "encoding_format"),
]


def post_raw(server: Server, path: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize(("path", "body", "status", "param"), [c[1:] for c in RAW], ids=[c[0] for c in RAW])
def test_raw_body(tiny_server: Server, path: str, body: bytes, status: int, param: str) -> None:
    r = post_raw(tiny_server, path, body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_surrogate_message_says_what_is_wrong(tiny_server: Server) -> None:
    r = post_raw(tiny_server, "/encode", rb'{"texts": ["a\ud800b"]}')
    assert r.json()["error"]["message"] == (
        "texts[0]: a lone surrogate (U+D800) at character 1 is not valid Unicode text"
    )


@pytest.mark.parametrize(("field", "value", "param"), WRONG_TYPES, ids=[f"{f}-{p}-{i}" for i, (f, _, p) in
                                                                       enumerate(WRONG_TYPES)])
def test_wrong_type(tiny_server: Server, field: str, value: object, param: str) -> None:
    body = {"tokens": [[2, 3]], "return_attentions": True, field: value}
    if field == "tokens":
        del body["return_attentions"]
    r = httpx.post(f"{tiny_server.url}/encode", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\u200b" * 10, "\ufeff", "\U0010ffff", " ", "\r\n\t"],
                         ids=["nul", "inner-nul", "zero-width", "bom", "last-codepoint", "space", "whitespace"])
def test_odd_but_valid_text_is_encoded(tiny_server: Server, text: str) -> None:
    r = httpx.post(f"{tiny_server.url}/encode", json={"texts": [text]}, timeout=30)
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"][0]) == 64


ATTENTION_LISTS = [
    ("heads-empty", {"attention_heads": []}, "attention_heads",
     'attention_heads: give at least one head index, or "mean"'),
    ("layers-more-than-the-model", {"attention_layers": [0, 1, 0]}, "attention_layers",
     "attention_layers: 3 entries; this model has 2 layers"),
    ("layers-duplicate", {"attention_layers": [1, -1]}, "attention_layers[1]",
     "attention_layers[1]: layer 1 is listed twice"),
    ("heads-more-than-the-model", {"attention_heads": [0] * 5}, "attention_heads",
     "attention_heads: 5 entries; this model has 4 heads"),
    ("heads-duplicate", {"attention_heads": [0, 2, 2]}, "attention_heads[2]",
     "attention_heads[2]: head 2 is listed twice"),
]


@pytest.mark.parametrize(("extra", "param", "message"), [c[1:] for c in ATTENTION_LISTS],
                         ids=[c[0] for c in ATTENTION_LISTS])
def test_attention_selection_is_bounded_by_the_model(tiny_server: Server, extra: dict, param: str,
                                                     message: str) -> None:
    body = {"tokens": [[2, 3]], "return_attentions": True, **extra}
    r = httpx.post(f"{tiny_server.url}/encode", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {"message": message, "type": "invalid_request_error", "param": param, "code": 422}


def test_huge_layer_list_is_refused(tiny_server: Server) -> None:
    body = {"tokens": [[2, 3]], "return_attentions": True, "attention_layers": [-1] * 200_000}
    r = httpx.post(f"{tiny_server.url}/encode", json=body, timeout=30)
    assert r.status_code in (413, 422), r.text


@pytest.mark.parametrize(("path", "body", "hint"), [
    ("/encode", {"tokens": [[5] * 129]}, "set truncate to true"),
    ("/v1/embeddings", {"model": "tiny", "input": [[5] * 129]}, "shorten the input"),
], ids=["encode", "openai"])
def test_too_long_hint_fits_the_route(tiny_server: Server, path: str, body: dict, hint: str) -> None:
    r = httpx.post(f"{tiny_server.url}{path}", json=body, timeout=30)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert hint in message
    if path == "/v1/embeddings":
        assert "truncate" not in message
