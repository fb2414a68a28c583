"""POST /tokenize and POST /decode (TEI's shapes): against the bundle's tokenizer.json run directly, offsets
checked against the text itself, and their limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tokenizers import Tokenizer


def _tokenizer(bundle: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.no_truncation()
    return tok


def test_tokenize_matches_the_tokenizer_and_the_text(tiny_client: TestClient, tiny_bundle: Path) -> None:
    text = "hello, world"
    r = tiny_client.post("/tokenize", json={"inputs": text})
    assert r.status_code == 200, r.text
    (tokens,) = r.json()
    want = _tokenizer(tiny_bundle).encode(text)
    assert [t["id"] for t in tokens] == want.ids
    assert [t["special"] for t in tokens] == [True] + [False] * len(text) + [True]  # [CLS], one per byte, [SEP]
    assert tokens[0]["start"] is None and tokens[-1]["stop"] is None
    assert "".join(text[t["start"]:t["stop"]] for t in tokens[1:-1]) == text


def test_tokenize_lists_without_special_tokens(tiny_client: TestClient) -> None:
    r = tiny_client.post("/tokenize", json={"inputs": ["ab", "c"], "add_special_tokens": False})
    assert [[t["text"] for t in row] for row in r.json()] == [["a", "b"], ["c"]]
    assert not any(t["special"] for row in r.json() for t in row)


def test_decode_round_trips(tiny_client: TestClient, tiny_bundle: Path) -> None:
    ids = _tokenizer(tiny_bundle).encode("Zürich café").ids
    assert tiny_client.post("/decode", json={"ids": ids}).json() == ["Zürich café"]
    both = tiny_client.post("/decode", json={"ids": [ids, ids[:2]], "skip_special_tokens": False}).json()
    assert both[0].startswith("[CLS]") and both[0].endswith("[SEP]") and len(both) == 2


def test_decode_is_never_cut_at_the_model_maximum(tiny_client: TestClient, tiny_bundle: Path) -> None:
    text = "abcdefghij" * 30  # 300 byte tokens past the tiny model's 128
    ids = _tokenizer(tiny_bundle).encode(text).ids
    assert len(ids) > 128
    assert tiny_client.post("/decode", json={"ids": ids}).json() == [text]


@pytest.mark.parametrize(
    ("route", "body", "param", "message"),
    [("/tokenize", {"inputs": []}, "inputs", "give at least one text"),
     ("/tokenize", {"inputs": "a", "prompt_name": "query"}, "prompt_name", "not one of this model's prompts (none)"),
     ("/tokenize", {"inputs": ["x" * 20_001]}, "inputs[0]", "max_chars_per_text"),
     ("/tokenize", {"inputs": ["abcdefghij" * 1000] * 4}, "inputs", "max_tokens_per_request"),
     ("/decode", {"ids": []}, "ids", "at least 1 item"),
     ("/decode", {"ids": [[5, 10**30]]}, "ids[0][1]", "outside the vocabulary"),
     ("/decode", {"ids": [[5]] * 257}, "ids", "max_inputs_per_request"),
     ("/decode", {"ids": [5, "a"]}, "ids", "")],
)
def test_bad_inputs_are_refused(tiny_client: TestClient, route: str, body: dict, param: str, message: str) -> None:
    r = tiny_client.post(route, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"].startswith(param) and message in error["message"], error


def test_lone_surrogate_is_refused(tiny_client: TestClient) -> None:
    r = tiny_client.post("/tokenize", content=b'{"inputs": ["ok", "a\\ud800"]}',
                         headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "inputs[1]", r.text


def test_minilm_offsets_point_into_the_text(minilm_client: TestClient, minilm_bundle: Path) -> None:
    text = "Zürich's naïve café"
    (tokens,) = minilm_client.post("/tokenize", json={"inputs": text}).json()
    pieces = [(text[t["start"]:t["stop"]], t["text"]) for t in tokens if not t["special"]]
    assert [t["text"] for t in tokens][:3] == ["[CLS]", "zurich", "'"]
    for surface, token in pieces:  # lowercased, accents stripped, '##' continuation
        assert surface.lower().replace("ü", "u").replace("ï", "i").replace("é", "e") == token.removeprefix("##")
    ids = [t["id"] for t in tokens]
    # tokenizers' own decoding, as TEI's /decode (no clean-up of spaces around punctuation)
    assert minilm_client.post("/decode", json={"ids": ids}).json() == [_tokenizer(minilm_bundle).decode(ids)]


def test_tokenize_stops_once_the_request_is_past_its_token_limit(tiny_client: TestClient, tiny_bundle: Path) -> None:
    """Texts are tokenized in chunks and the first chunk past max_tokens_per_request ends the work: the refusal
    counts the tokens of the texts tokenized so far."""
    texts = ["ab " * 6_000] * 40  # 720,000 characters; each text 6,002 tokens with its special tokens
    per_text = len(_tokenizer(tiny_bundle).encode(texts[0]).ids)
    r = tiny_client.post("/tokenize", json={"inputs": texts})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    done = int(message.split("in the first ")[1].split(" of 40 texts")[0])
    assert done * per_text > 32_768 and done < 40, message
    assert message.startswith(f"inputs: {done * per_text} tokens in the first {done} of 40 texts; at most 32768"), \
        message
