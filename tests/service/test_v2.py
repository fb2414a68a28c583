"""The Open Inference Protocol through the real `tritonclient` (HTTP, its defaults: binary tensors) against a
real server: health, metadata, infer with texts and with token ids, JSON and binary; results equal /encode's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from .conftest import Server, running_server

TEXTS = ["hello world", "Zürich in winter, ça va", ""]


@pytest.fixture(scope="module")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_bundle, tmp_path_factory.mktemp("v2") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def encode(server: Server, **body: object) -> dict:
    return httpx.post(f"{server.url}/encode", json=body, timeout=30).json()


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    meta = client.get_model_metadata("tiny")
    assert [i["name"] for i in meta["inputs"]] == ["text", "input_ids", "attention_mask"]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "pooled": [-1, 64], "last_hidden_state": [-1, -1, 64], "attentions": [-1, 2, 4, -1, -1]}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_texts_give_encodes_vectors(server: Server, client: triton.InferenceServerClient, binary: bool) -> None:
    text = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object), binary_data=binary)
    outputs = None if binary else [triton.InferRequestedOutput(n, binary_data=False)
                                   for n in ("pooled", "last_hidden_state")]
    result = client.infer("tiny", [text], outputs=outputs)
    want = encode(server, texts=TEXTS, return_token_embeddings=True)
    np.testing.assert_allclose(result.as_numpy("pooled"), want["embeddings"], atol=1e-6)
    hidden = result.as_numpy("last_hidden_state")
    for i, rows in enumerate(want["token_embeddings"]):
        np.testing.assert_allclose(hidden[i, : len(rows)], rows, atol=1e-6)
        assert not hidden[i, len(rows):].any()  # zero padding past each input


def test_token_ids_with_a_mask_and_attentions(server: Server, client: triton.InferenceServerClient) -> None:
    ids = np.array([[2, 10, 11, 12, 3], [2, 20, 3, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    inputs = [triton.InferInput("input_ids", list(ids.shape), "INT64"),
              triton.InferInput("attention_mask", list(ids.shape), "INT64")]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(mask, binary_data=False)
    result = client.infer("tiny", inputs, outputs=[triton.InferRequestedOutput("pooled"),
                                                   triton.InferRequestedOutput("attentions")])
    want = encode(server, tokens=[[2, 10, 11, 12, 3], [2, 20, 3]], return_attentions=True)
    np.testing.assert_allclose(result.as_numpy("pooled"), want["embeddings"], atol=1e-6)
    attentions = result.as_numpy("attentions")
    assert attentions.shape == (2, 2, 4, 5, 5)
    np.testing.assert_allclose(attentions[1, :, :, :3, :3], want["attentions"][1], atol=1e-6)


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.get_model_metadata("other"), "unknown model 'other' version '1'; this server serves 'tiny'"),
    (lambda c: c.infer("tiny", [triton.InferInput("pixels", [1], "FP32")]), "unknown input 'pixels'"),
], ids=["unknown-model", "unknown-input"])
def test_errors_reach_the_client_in_the_protocols_shape(client: triton.InferenceServerClient, call,
                                                        message: str) -> None:
    with pytest.raises(InferenceServerException) as exc:
        call(client)
    assert message in exc.value.message()


def test_limits_are_those_of_encode(server: Server) -> None:
    body = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 129], "data": [5] * 129}]}
    r = httpx.post(f"{server.url}/v2/models/tiny/infer", json=body, timeout=30)
    assert r.status_code == 422
    assert r.json() == {"error": "input_ids[0]: 129 tokens; the model's maximum is 128 (shorten the input)"}


def test_padding_cannot_blow_up_the_answer(tiny_bundle: Path, tmp_path: Path) -> None:
    """One long input among many short ones: the padded per-token tensor would be far larger than the work."""
    ids = [[7] * 128] + [[7] + [0] * 127] * 63
    mask = [[1] * 128] + [[1] + [0] * 127] * 63
    body = {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [64, 128], "data": ids},
                       {"name": "attention_mask", "datatype": "INT64", "shape": [64, 128], "data": mask}]}
    with running_server(tiny_bundle, tmp_path / "server.log", max_tokens_per_request=4096) as server:
        r = httpx.post(f"{server.url}/v2/models/tiny/infer", json=body, timeout=30)
        assert r.status_code == 422
        assert r.json()["error"] == (
            "last_hidden_state: 64 inputs padded to 128 tokens make 8192 rows; at most 4096 "
            "(max_tokens_per_request). Send inputs of similar lengths together, or ask only for pooled")
        body["outputs"] = [{"name": "pooled"}]  # the same inputs without the padded tensor: 191 real tokens
        assert httpx.post(f"{server.url}/v2/models/tiny/infer", json=body, timeout=30).status_code == 200
