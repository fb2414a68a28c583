"""POST /encode through the app: results equal the bundle run directly, transformers and sentence-transformers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient

from service.runtime import choose_providers

SENTENCES = [
    "A man is playing a guitar.",
    "Zürich, São Paulo, Kraków and 東京 are cities; naïve café façade — ½ € ✓.",
    "",
    "Attention is all you need.",
]
LONG = " ".join(["The encoder reads every token of this deliberately long sentence."] * 40)


def direct(bundle: Path, ids: list[int], graph: str = "model_attentions.onnx") -> list[np.ndarray]:
    """The bundle's graph run directly through ONNX Runtime on one unpadded sequence."""
    session = ort.InferenceSession(str(bundle / graph), providers=["CPUExecutionProvider"])
    arr = np.asarray([ids], dtype=np.int64)
    return [o[0] for o in session.run(None, {"input_ids": arr, "attention_mask": np.ones_like(arr)})]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ---- tiny bundle: token inputs


@pytest.fixture(scope="module")
def tiny_result(tiny_client: TestClient):
    tokens = [[2, 50, 60, 70, 3], [2, 9, 3], list(range(5, 100))]
    r = tiny_client.post("/encode", json={"tokens": tokens, "return_token_embeddings": True,
                                          "return_attentions": True})
    assert r.status_code == 200, r.text
    return tokens, r.json()


def test_tiny_matches_bundle_run_directly(tiny_result, tiny_bundle: Path) -> None:
    tokens, body = tiny_result
    assert body["model"] == "tiny" and "tokens" not in body
    assert body["usage"] == {"prompt_tokens": 103, "total_tokens": 103}
    for i, ids in enumerate(tokens):
        hidden, pooled, att = direct(tiny_bundle, ids)
        np.testing.assert_allclose(body["embeddings"][i], pooled, atol=1e-5)  # tiny: mean, not normalized
        np.testing.assert_allclose(body["token_embeddings"][i], hidden, atol=1e-5)
        np.testing.assert_allclose(body["attentions"][i], att, atol=1e-5)
        assert np.asarray(body["attentions"][i]).shape == (2, 4, len(ids), len(ids))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_and_normalization_options(tiny_client: TestClient, tiny_bundle: Path, pooling: str) -> None:
    ids = [2, 11, 12, 13, 3]
    hidden = direct(tiny_bundle, ids)[0]
    want = hidden.mean(0) if pooling == "mean" else hidden[0]
    r = tiny_client.post("/encode", json={"tokens": [ids], "pooling": pooling, "normalize": True})
    np.testing.assert_allclose(r.json()["embeddings"][0], unit(want), atol=1e-5)


def test_pooling_none_returns_no_embeddings(tiny_client: TestClient) -> None:
    body = tiny_client.post("/encode", json={"tokens": [[1, 2]], "pooling": "none",
                                             "return_token_embeddings": True}).json()
    assert "embeddings" not in body and len(body["token_embeddings"][0]) == 2


def test_base64_is_little_endian_float32(tiny_client: TestClient) -> None:
    payload = {"tokens": [[2, 40, 41, 3], [2, 5, 3]], "return_token_embeddings": True}
    floats = tiny_client.post("/encode", json=payload).json()
    packed = tiny_client.post("/encode", json={**payload, "encoding_format": "base64"}).json()
    for i in range(2):
        vec = np.frombuffer(base64.b64decode(packed["embeddings"][i]), dtype="<f4")
        np.testing.assert_array_equal(vec, np.asarray(floats["embeddings"][i], dtype=np.float32))
        tok = np.frombuffer(base64.b64decode(packed["token_embeddings"][i]), dtype="<f4").reshape(-1, 64)
        np.testing.assert_array_equal(tok, np.asarray(floats["token_embeddings"][i], dtype=np.float32))


@pytest.mark.parametrize(
    ("layers", "heads", "shape"),
    [([-1], [0, 2], (1, 2)), ([0, 1], "mean", (2, 1)), (None, [3], (2, 1)), ([1, -2], None, (2, 4))],
)
def test_attention_selection(tiny_client: TestClient, tiny_bundle: Path, layers, heads, shape) -> None:
    ids = [2, 30, 31, 32, 3]
    full = direct(tiny_bundle, ids)[2]  # (2, 4, n, n)
    payload = {"tokens": [ids], "return_attentions": True, "pooling": "none"}
    if layers is not None:
        payload["attention_layers"] = layers
    if heads is not None:
        payload["attention_heads"] = heads
    got = np.asarray(tiny_client.post("/encode", json=payload).json()["attentions"][0])
    want = full[[l_ % 2 for l_ in (layers or [0, 1])]]
    want = want.mean(1, keepdims=True) if heads == "mean" else want[:, heads or [0, 1, 2, 3]]
    assert got.shape == (*shape, 5, 5)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_texts_on_tiny_use_its_byte_tokenizer(tiny_client: TestClient) -> None:
    body = tiny_client.post("/encode", json={"texts": ["hé"]}).json()
    assert body["tokens"] == [["[CLS]", "h", "Ã", "©", "[SEP]"]]  # byte-level: é is two bytes


def test_token_truncation_cuts_to_the_maximum(tiny_client: TestClient, tiny_bundle: Path) -> None:
    ids = [7] * 130  # tiny's maximum is 128
    body = tiny_client.post("/encode", json={"tokens": [ids], "truncate": True}).json()
    np.testing.assert_allclose(body["embeddings"][0], direct(tiny_bundle, ids[:128])[1], atol=1e-5)
    assert body["usage"]["prompt_tokens"] == 128


# ---- MiniLM: against sentence-transformers and transformers


@pytest.fixture(scope="module")
def sentence_model(minilm_folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_folder), device="cpu", local_files_only=True)


def test_minilm_vectors_equal_sentence_transformers(minilm_client: TestClient, sentence_model) -> None:
    texts = [*SENTENCES, LONG]
    r = minilm_client.post("/encode", json={"texts": texts, "truncate": True})
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["embeddings"])
    want = sentence_model.encode(texts, convert_to_numpy=True)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.99999, cosine
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert len(r.json()["tokens"][-1]) == 256 and r.json()["tokens"][-1][-1] == "[SEP]"


def test_minilm_long_text_without_truncate_is_refused(minilm_client: TestClient, minilm_folder: Path) -> None:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(minilm_folder / "tokenizer.json"))
    reference.no_truncation()
    length = len(reference.encode(LONG).ids)
    r = minilm_client.post("/encode", json={"texts": ["ok", LONG]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == "texts[1]"
    assert err["message"] == (f"texts[1]: {length} tokens; the model's maximum is 256 "
                              "(set truncate to true to cut it)")


def test_minilm_attentions_equal_transformers(minilm_client: TestClient, minilm_folder: Path) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(str(minilm_folder), attn_implementation="eager").eval()
    texts = [SENTENCES[1], LONG]
    body = minilm_client.post("/encode", json={"texts": texts, "truncate": True, "return_attentions": True,
                                               "return_token_embeddings": True}).json()
    tokenizer = json.loads((minilm_folder / "tokenizer.json").read_text())["model"]["vocab"]
    for i in range(len(texts)):
        ids = torch.tensor([[tokenizer[t] for t in body["tokens"][i]]])
        with torch.no_grad():
            want = ref(input_ids=ids, output_attentions=True)
        got = np.asarray(body["attentions"][i])
        assert got.shape == (6, 12, ids.shape[1], ids.shape[1])
        np.testing.assert_allclose(got, torch.cat(want.attentions).numpy(), atol=1e-4)
        np.testing.assert_allclose(body["token_embeddings"][i], want.last_hidden_state[0].numpy(), atol=1e-4)


def test_models_route_describes_the_model(minilm_client: TestClient) -> None:
    (model,) = minilm_client.get("/v1/models").json()["data"]
    provider = choose_providers("auto")[0][0]  # CUDA on a GPU host, else the CPU
    assert {k: model[k] for k in ("id", "dimensions", "max_length", "layers", "heads", "execution_provider")} == {
        "id": "all-MiniLM-L6-v2", "dimensions": 384, "max_length": 256, "layers": 6, "heads": 12,
        "execution_provider": provider,
    }


def test_health_and_ready(minilm_client: TestClient) -> None:
    assert minilm_client.get("/healthz").json() == {"status": "ok"}
    assert minilm_client.get("/readyz").json() == {"status": "ready"}
    assert minilm_client.get("/docs").status_code == 200
    assert "/encode" in minilm_client.get("/openapi.json").json()["paths"]


def test_metrics_are_exposed(minilm_client: TestClient) -> None:
    def count(text: str, sample: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith(sample + " ")), None)
        return float(line.split()[-1]) if line else 0.0

    before = minilm_client.get("/metrics").text
    minilm_client.post("/encode", json={"texts": ["metrics", "two"]})
    text = minilm_client.get("/metrics").text
    ok = 'attnserve_requests_total{model="all-MiniLM-L6-v2",route="/encode",status="200"}'
    assert count(text, ok) - count(before, ok) == 1
    done = 'attnserve_sequences_total{model="all-MiniLM-L6-v2"}'
    assert count(text, done) - count(before, done) == 2
    for name in ("attnserve_requests_total", "attnserve_request_duration_seconds_bucket",
                 "attnserve_queue_duration_seconds_bucket", "attnserve_inference_duration_seconds_bucket",
                 "attnserve_queue_depth", "attnserve_batch_size_bucket", "attnserve_batch_tokens_bucket",
                 "attnserve_padding_ratio_bucket"):
        assert name in text
    assert 'attnserve_requests_total{model="all-MiniLM-L6-v2",route="/encode",status="200"}' in text
