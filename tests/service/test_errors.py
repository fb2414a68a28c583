"""Bad input: a 4xx JSON error naming the field, before anything is queued; never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from .conftest import client_for

LIMITS = {"max_inputs_per_request": 4, "max_chars_per_text": 50, "max_tokens_per_request": 300,
          "max_attention_values": 5000, "max_body_bytes": 4096}

CASES = [
    # (id, path, json body or raw bytes, status, param)
    ("malformed-json", "/encode", b'{"texts": [', 400, "body"),
    ("body-not-object", "/encode", b'["a"]', 422, "body"),
    ("neither", "/encode", {}, 422, "body"),
    ("both", "/encode", {"texts": ["a"], "tokens": [[1]]}, 422, "body"),
    ("texts-empty", "/encode", {"texts": []}, 422, "texts"),
    ("texts-not-list", "/encode", {"texts": "hello"}, 422, "texts"),
    ("texts-wrong-item", "/encode", {"texts": ["a", 3]}, 422, "texts[1]"),
    ("tokens-empty", "/encode", {"tokens": []}, 422, "tokens"),
    ("tokens-empty-input", "/encode", {"tokens": [[1, 2], []]}, 422, "tokens[1]"),
    ("tokens-float", "/encode", {"tokens": [[1, 2.5]]}, 422, "tokens[0][1]"),
    ("tokens-string", "/encode", {"tokens": [["1"]]}, 422, "tokens[0][0]"),
    ("token-negative", "/encode", {"tokens": [[1, -1]]}, 422, "tokens[0][1]"),
    ("token-past-vocab", "/encode", {"tokens": [[1000]]}, 422, "tokens[0][0]"),
    ("tokens-too-long", "/encode", {"tokens": [[1], [5] * 129]}, 422, "tokens[1]"),
    ("too-many-inputs", "/encode", {"texts": ["a"] * 5}, 422, "texts"),
    ("text-too-many-chars", "/encode", {"texts": ["x" * 51]}, 422, "texts[0]"),
    ("too-many-tokens", "/encode", {"tokens": [[5] * 100] * 4}, 422, "tokens"),
    ("text-too-long", "/encode", {"texts": ["😀" * 40, "ok"], "truncate": False}, 422, "texts[0]"),  # 4 bytes each
    ("layer-unknown", "/encode", {"tokens": [[1]], "return_attentions": True, "attention_layers": [2]},
     422, "attention_layers[0]"),
    ("layer-negative-unknown", "/encode", {"tokens": [[1]], "return_attentions": True,
                                           "attention_layers": [0, -3]}, 422, "attention_layers[1]"),
    ("layers-empty", "/encode", {"tokens": [[1]], "return_attentions": True, "attention_layers": []},
     422, "attention_layers"),
    ("head-unknown", "/encode", {"tokens": [[1]], "return_attentions": True, "attention_heads": [0, 4]},
     422, "attention_heads[1]"),
    ("heads-word", "/encode", {"tokens": [[1]], "return_attentions": True, "attention_heads": "max"},
     422, "attention_heads"),
    ("too-many-attention-values", "/encode", {"tokens": [[5] * 30], "return_attentions": True}, 422,
     "return_attentions"),
    ("pooling-unknown", "/encode", {"texts": ["a"], "pooling": "max"}, 422, "pooling"),
    ("format-unknown", "/encode", {"texts": ["a"], "encoding_format": "hex"}, 422, "encoding_format"),
    ("truncate-string", "/encode", {"texts": ["a"], "truncate": "yes"}, 422, "truncate"),
    ("normalize-number", "/encode", {"texts": ["a"], "normalize": 1}, 422, "normalize"),
    ("unknown-field", "/encode", {"texts": ["a"], "colour": "red"}, 422, "colour"),
    ("body-too-large", "/encode", {"texts": ["x" * 5000]}, 413, "body"),
    ("openai-unknown-model", "/v1/embeddings", {"input": "a", "model": "gpt-4"}, 404, "model"),
    ("openai-no-model", "/v1/embeddings", {"input": "a"}, 422, "model"),
    ("openai-empty-input", "/v1/embeddings", {"input": [], "model": "tiny"}, 422, "input"),
    ("openai-mixed-input", "/v1/embeddings", {"input": ["a", 1], "model": "tiny"}, 422, "input"),
    ("openai-dimensions", "/v1/embeddings", {"input": "a", "model": "tiny", "dimensions": 32}, 422, "dimensions"),
    ("openai-token-past-vocab", "/v1/embeddings", {"input": [[1, 5000]], "model": "tiny"}, 422, "input[0][1]"),
    ("openai-too-long", "/v1/embeddings", {"input": [[5] * 129], "model": "tiny"}, 422, "input[0]"),
]


# The exact message of each case: what a client reads (field, value, limit, setting, hint)
MESSAGES = {
    'malformed-json': 'request body is not valid JSON',
    'body-not-object': 'body: Input should be a valid dictionary or object to extract fields from',
    'neither': "body: give exactly one of 'texts' or 'tokens'",
    'both': "body: give exactly one of 'texts' or 'tokens'",
    'texts-empty': 'texts: List should have at least 1 item after validation, not 0',
    'texts-not-list': 'texts: Input should be a valid list',
    'texts-wrong-item': 'texts[1]: Input should be a valid string',
    'tokens-empty': 'tokens: List should have at least 1 item after validation, not 0',
    'tokens-empty-input': 'tokens[1]: an input needs at least one token',
    'tokens-float': 'tokens[0][1]: Input should be a valid integer',
    'tokens-string': 'tokens[0][0]: Input should be a valid integer',
    'token-negative': 'tokens[0][1]: token id -1 is outside the vocabulary [0, 1000)',
    'token-past-vocab': 'tokens[0][0]: token id 1000 is outside the vocabulary [0, 1000)',
    'tokens-too-long': "tokens[1]: 129 tokens; the model's maximum is 128 (set truncate to true to cut it)",
    'too-many-inputs': 'texts: 5 inputs; at most 4 per request (max_inputs_per_request)',
    'text-too-many-chars': 'texts[0]: 51 characters; at most 50 (max_chars_per_text)',
    'too-many-tokens': 'tokens: 400 tokens in this request; at most 300 (max_tokens_per_request)',
    'text-too-long': "texts[0]: 162 tokens; the model's maximum is 128 (set truncate to true to cut it)",
    'layer-unknown': 'attention_layers[0]: 2 is not an index in [-2, 2)',
    'layer-negative-unknown': 'attention_layers[1]: -3 is not an index in [-2, 2)',
    'layers-empty': 'attention_layers: List should have at least 1 item after validation, not 0',
    'head-unknown': 'attention_heads[1]: 4 is not an index in [-4, 4)',
    'heads-word': 'attention_heads: Input should be a valid list',
    'too-many-attention-values': (
        "return_attentions: this response would hold 7200 attention values; at most 5000 (max_attention_values). "
        'Ask for fewer attention_layers or attention_heads (or "mean"), or shorter inputs'
    ),
    'pooling-unknown': "pooling: Input should be 'mean', 'cls', 'last' or 'none'",
    'format-unknown': "encoding_format: Input should be 'float' or 'base64'",
    'truncate-string': 'truncate: Input should be a valid boolean',
    'normalize-number': 'normalize: Input should be a valid boolean',
    'unknown-field': 'colour: Extra inputs are not permitted',
    'body-too-large': 'request body exceeds 4096 bytes (max_body_bytes)',
    'openai-unknown-model': "model: unknown model 'gpt-4'; this server serves 'tiny'",
    'openai-no-model': 'model: Field required',
    'openai-empty-input': 'input: give at least one input',
    'openai-mixed-input': 'input: Input should be a valid string',
    'openai-dimensions': 'dimensions: 32 is not allowed: the model gives 64; this model was not trained for '
                         'shorter vectors (its bundle lists no Matryoshka dimensions; export it with '
                         '--matryoshka-dims if it was)',
    'openai-token-past-vocab': 'input[0][1]: token id 5000 is outside the vocabulary [0, 1000)',
    'openai-too-long': "input[0]: 129 tokens; the model's maximum is 128 (shorten the input)",
}


@pytest.fixture(scope="module")
def limited(tiny_bundle: Path) -> Iterator[TestClient]:
    with client_for(tiny_bundle, **LIMITS) as client:
        yield client


@pytest.mark.parametrize(("name", "path", "body", "status", "param"), CASES, ids=[c[0] for c in CASES])
def test_bad_request(limited: TestClient, name: str, path: str, body, status: int, param: str) -> None:
    if isinstance(body, bytes):
        r = limited.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = limited.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["code"] == status
    assert error["message"] == MESSAGES[name]


def test_nothing_bad_reached_the_queue(limited: TestClient) -> None:
    for case in CASES:
        body = case[2]
        if isinstance(body, bytes):
            limited.post(case[1], content=body, headers={"content-type": "application/json"})
        else:
            limited.post(case[1], json=body)
    metrics = limited.get("/metrics").text
    assert 'attnserve_sequences_total{model="tiny"} 0.0' in metrics


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"texts": ["a"] * 4}, 200), ({"texts": ["a"] * 5}, 422),
        ({"texts": ["x" * 50]}, 200), ({"texts": ["x" * 51]}, 422),
        ({"tokens": [[5] * 128]}, 200), ({"tokens": [[5] * 129]}, 422),
        ({"tokens": [[5] * 100, [5] * 100, [5] * 100]}, 200), ({"tokens": [[5] * 100, [5] * 100, [5] * 101]}, 422),
        ({"tokens": [[5] * 5], "return_attentions": True, "attention_layers": [0], "attention_heads": "mean"}, 200),
    ],
    ids=["inputs-4", "inputs-5", "chars-50", "chars-51", "len-128", "len-129", "tokens-300", "tokens-301",
         "attention-small"],
)
def test_limit_and_limit_plus_one(limited: TestClient, body: dict, status: int) -> None:
    assert limited.post("/encode", json=body).status_code == status


def test_attention_values_limit_exactly(limited: TestClient) -> None:
    # 2 layers x 4 heads x n^2 <= 5000: n = 25 gives 5000, n = 26 gives 5408
    ok = {"tokens": [[5] * 25], "return_attentions": True}
    assert limited.post("/encode", json=ok).status_code == 200
    assert limited.post("/encode", json={**ok, "tokens": [[5] * 26]}).status_code == 422


def test_empty_string_encodes_as_special_tokens_only(limited: TestClient) -> None:
    body = limited.post("/encode", json={"texts": [""]}).json()
    assert body["tokens"] == [["[CLS]", "[SEP]"]]
    assert len(body["embeddings"][0]) == 64


def test_get_on_encode_is_405(limited: TestClient) -> None:
    r = limited.get("/encode")
    assert r.status_code == 405
    assert r.json()["error"] == {"message": "Method Not Allowed", "type": "invalid_request_error", "param": None,
                                 "code": 405}


def test_texts_without_a_tokenizer(tmp_path: Path, tiny_bundle: Path) -> None:
    import json
    import shutil

    bundle = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "tokenizer.json").unlink()
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["serving"]["tokenizer"] = None
    del cfg["files"]["tokenizer.json"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    with client_for(bundle, warmup=False) as client:
        r = client.post("/encode", json={"texts": ["a"]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "texts"
        assert client.post("/encode", json={"tokens": [[1, 2]]}).status_code == 200


def _chunks(total: int):
    """A JSON body of exactly ``total`` bytes, sent chunked (no Content-Length)."""
    head, tail = b'{"texts": ["', b'"]}'
    filler = total - len(head) - len(tail)
    yield head
    for i in range(0, filler, 100):
        yield b"x" * min(100, filler - i)
    yield tail


@pytest.mark.parametrize(("size", "status"), [(4096, 422), (4097, 413)], ids=["limit", "limit+1"])
def test_chunked_body_limit(limited: TestClient, size: int, status: int) -> None:
    # at the limit the body is read and then refused for its text's length (max_chars_per_text is 50)
    r = limited.post("/encode", content=_chunks(size), headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == status
    assert r.json()["error"]["param"] == ("body" if status == 413 else "texts[0]")
