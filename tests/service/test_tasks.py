"""Classification, rerank and sparse bundles through the whole product, several models in one real server:
random-weight checkpoints made by transformers (BertForSequenceClassification with three labels,
RobertaForSequenceClassification with one: a cross-encoder, BertForMaskedLM as SPLADE's base), exported with
`attnserve export hf`, served beside an embedding model by one `attnserve serve` on 127.0.0.1. Scores, labels and
sparse vectors equal transformers' within 1e-4 on batches of mixed lengths; pairs are tokenized as transformers'
tokenizer encodes pairs (with its truncation of the longer text)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from tests.exporting import export_bundles
from tests.families import make_checkpoint
from tests.models.test_heads import splade
from tests.service.conftest import Server, client_for, running_server

pytestmark = pytest.mark.slow
LIMIT = 1e-4
LABELS = ["contradiction", "neutral", "entailment"]
QUERY = "the quick fox"
DOCUMENTS = ["a lazy dog", "the quick brown fox jumps over the lazy dog", "paris", "zurich city search",
             "token vector model encoder " * 6, "x"]
TEXTS = ["the quick brown fox", "x", "attention over tokens in paris", ("the dog", "a quick fox"),
         ("search the passage", "zurich")]


class Tasks:
    def __init__(self, root: Path, server: Server, references: dict[str, Any]) -> None:
        self.root, self.server, self.references = root, server, references

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = httpx.post(f"{self.server.url}{path}", json=body, timeout=120)
        assert response.status_code == status, response.text
        return response.json()

    def tokenizer(self, name: str) -> Any:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(self.root / name / "tokenizer.json"))

    def expected(self, name: str, texts: list[Any], max_length: int = 64) -> np.ndarray:
        """transformers: its tokenizer on each text or pair (truncating at the maximum), its model on the padded
        batch; (B, n_labels) logits, or (B, vocab) SPLADE vectors for the masked-LM model."""
        tokenizer, model = self.tokenizer(name), self.references[name]
        rows = [tokenizer(*((t,) if isinstance(t, str) else tuple(t)), truncation=True, max_length=max_length,
                          return_token_type_ids=True) for t in texts]
        width = max(len(r["input_ids"]) for r in rows)
        ids, mask, types = (torch.zeros((len(rows), width), dtype=torch.long) for _ in range(3))
        ids += tokenizer.pad_token_id or 0
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], mask[i, :n], types[i, :n] = (torch.tensor(r[k]) for k in ("input_ids", "attention_mask",
                                                                                   "token_type_ids"))
        kwargs = {"token_type_ids": types} if model.config.type_vocab_size > 1 else {}
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, **kwargs).logits
        return splade(logits, mask) if name == "splade" else logits.numpy()


@pytest.fixture(scope="module")
def tasks(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tasks]:
    root = tmp_path_factory.mktemp("tasks")
    references = {
        "nli": make_checkpoint("bert", root / "nli-checkpoint", head="classify", labels=LABELS),
        "reranker": make_checkpoint("roberta", root / "reranker-checkpoint", head="classify", labels=["score"]),
        "splade": make_checkpoint("bert", root / "splade-checkpoint", head="mlm"),
    }
    export_bundles(*(["hf", str(root / f"{name}-checkpoint"), "--output", str(root / name), "--name", name,
                      *(["--task", "sparse"] if name == "splade" else [])] for name in references))
    models = [str(tiny_bundle), *(f"{n}={root / n}" for n in references)]
    with running_server(models, root / "server.log") as server:
        yield Tasks(root, server, references)


def test_models_lists_every_model_with_its_task(tasks: Tasks) -> None:
    data = httpx.get(f"{tasks.server.url}/v1/models").json()["data"]
    assert [(m["id"], m["task"]) for m in data] == [("tiny", "embed"), ("nli", "classify"), ("reranker", "rerank"),
                                                    ("splade", "sparse")]
    assert data[1]["labels"] == LABELS
    metrics = httpx.get(f"{tasks.server.url}/metrics").text
    assert 'attnserve_model_info{engine="onnxruntime",model="reranker",precision="fp32",task="rerank"} 1.0' in metrics


def _raw_scores_equal(want: np.ndarray, results: list[list[dict[str, Any]]]) -> None:
    """Each row's raw scores by label (LABELS' order) equal transformers' logits ``want`` (B, labels)."""
    for row, scored in zip(want, results, strict=True):
        by_label = {r["label"]: r["score"] for r in scored}
        assert np.abs(np.array([by_label[label] for label in LABELS]) - row).max() <= LIMIT


def _sparse_equal(want: np.ndarray, vectors: list[dict[str, Any]]) -> None:
    """The same nonzero entries (ids ascending) as transformers' SPLADE rows ``want`` (B, vocab), values within
    LIMIT."""
    for row, vector in zip(want, vectors, strict=True):
        assert vector["indices"] == list(np.flatnonzero(row))
        assert np.abs(np.array(vector["values"]) - row[np.flatnonzero(row)]).max() <= LIMIT


def test_classify_equals_transformers_for_texts_and_pairs(tasks: Tasks) -> None:
    want = tasks.expected("nli", TEXTS)
    raw = tasks.post("/classify", {"model": "nli", "texts": TEXTS, "raw_scores": True})
    scored = tasks.post("/classify", {"model": "nli", "texts": TEXTS})
    top = tasks.post("/classify", {"model": "nli", "texts": TEXTS, "top_k": 1})
    _raw_scores_equal(want, raw["results"])
    for i, row in enumerate(want):
        probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()  # softmax in NumPy
        results = scored["results"][i]
        assert [r["label"] for r in results] == [LABELS[j] for j in np.argsort(-probabilities)]  # best first
        assert np.abs(np.array([r["score"] for r in results]) - np.sort(probabilities)[::-1]).max() <= LIMIT
        assert top["results"][i] == results[:1]
    assert np.abs(want - want[:1]).max() > 1e-3  # the inputs' scores differ: a mix-up would show
    assert scored["usage"]["total_tokens"] > 0


def test_classify_attentions_tokens_and_segments_equal_transformers(tasks: Tasks) -> None:
    """/classify with attentions, for texts and pairs: every layer's and head's attention equals transformers'
    (output_attentions), the token strings and segments equal its tokenizer's pair encoding."""
    tokenizer, model = tasks.tokenizer("nli"), tasks.references["nli"]
    got = tasks.post("/classify", {"model": "nli", "texts": TEXTS, "return_attentions": True})
    for i, item in enumerate(TEXTS):
        encoding = tokenizer(*((item,) if isinstance(item, str) else tuple(item)), return_token_type_ids=True)
        ids = torch.tensor([encoding["input_ids"]])
        kwargs = {"token_type_ids": torch.tensor([encoding["token_type_ids"]])} if model.config.type_vocab_size > 1 \
            else {}
        with torch.no_grad():
            layers = model(input_ids=ids, output_attentions=True, **kwargs).attentions  # per layer (1, h, n, n)
        want = np.stack([a[0].numpy() for a in layers])  # (layers, h, n, n)
        np.testing.assert_allclose(np.asarray(got["attentions"][i]), want, atol=LIMIT, rtol=0)
        assert got["tokens"][i] == tokenizer.convert_ids_to_tokens(encoding["input_ids"])
        assert got["segments"][i] == encoding.sequence_ids()


def test_rerank_orders_as_transformers_scores_in_every_request_shape(tasks: Tasks) -> None:
    logits = tasks.expected("reranker", [(QUERY, d) for d in DOCUMENTS])[:, 0]
    relevance = 1 / (1 + np.exp(-logits))  # a one-label cross-encoder's score: the sigmoid
    order = list(np.argsort(-relevance, kind="stable"))
    cohere = tasks.post("/rerank", {"model": "reranker", "query": QUERY, "documents": DOCUMENTS, "top_n": 3,
                                    "return_documents": True})
    assert [r["index"] for r in cohere["results"]] == order[:3]
    for r in cohere["results"]:
        assert abs(r["relevance_score"] - relevance[r["index"]]) <= LIMIT
        assert r["document"] == {"text": DOCUMENTS[r["index"]]}
    jina = tasks.post("/v1/rerank", {"model": "reranker", "query": QUERY,
                                     "documents": [{"text": d} for d in DOCUMENTS]})
    assert [r["index"] for r in jina["results"]] == order and "document" not in jina["results"][0]
    tei = tasks.post("/rerank", {"model": "reranker", "query": QUERY, "texts": DOCUMENTS, "raw_scores": True,
                                 "return_text": True})
    assert [r["index"] for r in tei] == order
    for r in tei:
        assert abs(r["score"] - logits[r["index"]]) <= LIMIT and r["text"] == DOCUMENTS[r["index"]]


def test_long_pairs_are_truncated_as_transformers_truncates_them(tasks: Tasks) -> None:
    long_document = "the encoder reads every token of this long passage " * 20  # past 64 tokens alone
    pairs = [(QUERY, long_document), (long_document, "paris")]
    want = tasks.expected("nli", pairs)
    got = tasks.post("/classify", {"model": "nli", "texts": pairs, "raw_scores": True, "truncate": True})
    _raw_scores_equal(want, got["results"])
    refused = tasks.post("/rerank", {"model": "reranker", "query": QUERY, "documents": ["x", long_document],
                                     "truncate": False}, status=422)
    assert refused["error"]["param"] == "documents[1]" and "maximum is 64" in refused["error"]["message"]


def test_sparse_vectors_equal_splade_on_transformers_logits(tasks: Tasks) -> None:
    texts = [t for t in TEXTS if isinstance(t, str)] + ["zurich " * 80]  # the last is cut at the maximum
    want = tasks.expected("splade", texts)
    got = tasks.post("/encode", {"model": "splade", "texts": texts, "truncate": True})["sparse_embeddings"]
    _sparse_equal(want, got)
    top = tasks.post("/encode", {"model": "splade", "texts": texts[:1], "sparse_top_k": 3})["sparse_embeddings"][0]
    best = sorted(np.argsort(-want[0], kind="stable")[:3])
    assert top["indices"] == best and np.allclose(top["values"], want[0][best], atol=LIMIT)


def test_task_bundles_on_openvino_equal_transformers(tasks: Tasks, tiny_bundle: Path) -> None:
    """The second engine (ATTNSERVE_ENGINE=openvino, fp32) serves the task bundles too: the classifier's logits
    for texts and pairs, the cross-encoder's scores, SPLADE's sparse vectors, as transformers gives them. The
    default (first) model is the classifier here: /v1/models and the KServe metadata of an embedding model
    still answer (they once refused because the default model could not embed)."""
    texts = [t for t in TEXTS if isinstance(t, str)]
    bundles = [f"{name}={tasks.root / name}" for name in ("nli", "reranker", "splade")] + [str(tiny_bundle)]
    with client_for(bundles, engine="openvino") as client:
        listed = client.get("/v1/models")
        assert listed.status_code == 200, listed.text
        assert {m["id"]: m["engine"] for m in listed.json()["data"]} == dict.fromkeys(
            ("nli", "reranker", "splade", "tiny"), "openvino")
        assert client.get("/v2/models/tiny").status_code == 200
        nli = client.post("/classify", json={"model": "nli", "texts": TEXTS, "raw_scores": True}).json()
        rerank = client.post("/rerank", json={"model": "reranker", "query": QUERY, "texts": DOCUMENTS,
                                              "raw_scores": True}).json()
        sparse = client.post("/encode", json={"model": "splade", "texts": texts}).json()["sparse_embeddings"]
    _raw_scores_equal(tasks.expected("nli", TEXTS), nli["results"])
    logits = tasks.expected("reranker", [(QUERY, d) for d in DOCUMENTS])[:, 0]
    assert [r["index"] for r in rerank] == list(np.argsort(-logits, kind="stable"))
    assert max(abs(r["score"] - logits[r["index"]]) for r in rerank) <= LIMIT
    _sparse_equal(tasks.expected("splade", texts), sparse)


def test_concurrent_mixed_traffic_gets_each_answer_from_its_model(tasks: Tasks) -> None:
    """Every model's requests at once, in one server: each answer equals the same request answered alone."""
    requests = [("/encode", {"texts": ["the quick fox", "x"]}), ("/encode", {"model": "splade", "texts": ["x y"]}),
                ("/classify", {"model": "nli", "texts": TEXTS}),
                ("/rerank", {"model": "reranker", "query": QUERY, "documents": DOCUMENTS})]
    alone = [tasks.post(path, body) for path, body in requests]
    with ThreadPoolExecutor(16) as pool:
        mixed = list(pool.map(lambda k: (k % 4, tasks.post(*requests[k % 4])), range(64)))
    for k, answer in mixed:
        assert json.dumps(answer, sort_keys=True) == json.dumps(alone[k], sort_keys=True) or _close(answer, alone[k])


def _close(a: Any, b: Any) -> bool:
    """Equal up to float rounding (a batch of another size may sum in another order)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return abs(a - b) <= LIMIT
    return a == b


def test_one_models_overload_does_not_starve_another(tasks: Tasks) -> None:
    """A flood of full-length rerank pairs (each model has its own queue and workers): the embedder's requests,
    sent while the flood runs, are all answered, and before the flood is through."""
    long_document = "the encoder reads every token of this long passage " * 20
    flood_body = {"model": "reranker", "query": QUERY, "documents": [long_document] * 200}

    def flood(_: int) -> tuple[int, float]:
        r = httpx.post(f"{tasks.server.url}/rerank", json=flood_body, timeout=120)
        return r.status_code, time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        flooding = [pool.submit(flood, i) for i in range(8)]
        time.sleep(0.3)
        embedded = []
        for _ in range(10):
            r = httpx.post(f"{tasks.server.url}/encode", json={"texts": ["the quick fox"]}, timeout=120)
            embedded.append((r.status_code, time.monotonic()))
        floods = [f.result() for f in flooding]
    assert all(status == 200 for status, _ in embedded)
    assert {status for status, _ in floods} <= {200, 503}  # the flood may fill its own queue; never 500
    assert max(t for _, t in embedded) < max(t for _, t in floods)


BAD = [
    ("/rerank", {"model": "reranker", "documents": ["a"]}, "query"),
    ("/rerank", {"model": "reranker", "query": "q", "documents": ["a"], "texts": ["a"]}, None),
    ("/rerank", {"model": "reranker", "query": "q", "documents": []}, "documents"),
    ("/rerank", {"model": "reranker", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ("/rerank", {"model": "reranker", "query": "q", "documents": [7]}, "documents"),
    ("/rerank", b'{"model": "reranker", "query": "\\ud800", "documents": ["a"]}', "documents[0]"),
    ("/rerank", {"model": "reranker", "query": "q" * 19_000, "documents": ["a"] * 250}, "documents"),
    ("/rerank", {"model": "reranker", "query": "q", "documents": ["a"] * 300}, "documents"),
    ("/rerank", {"model": "nli", "query": "q", "documents": ["a"]}, "model"),
    ("/rerank", {"model": "nope", "query": "q", "documents": ["a"]}, "model"),
    ("/rerank", {"query": "q", "documents": ["a"]}, "model"),  # the default model is the embedder
    ("/classify", {"model": "nli", "texts": []}, "texts"),
    ("/classify", {"model": "nli", "texts": [["a", "b", "c"]]}, "texts"),
    ("/classify", {"model": "nli", "texts": ["a"], "top_k": 0}, "top_k"),
    ("/classify", {"model": "nli", "texts": ["a"], "raw_scores": "yes"}, "raw_scores"),
    ("/classify", {"model": "nli", "texts": ["word " * 100]}, "texts[0]"),
    ("/classify", {"model": "splade", "texts": ["a"]}, "model"),
    ("/encode", {"model": "splade", "texts": ["a"], "pooling": "cls"}, "pooling"),
    ("/encode", {"model": "splade", "texts": ["a"], "dimensions": 8}, "dimensions"),
    ("/encode", {"model": "splade", "texts": ["a"], "sparse_top_k": 0}, "sparse_top_k"),
    ("/encode", {"texts": ["a"], "sparse_top_k": 5}, "sparse_top_k"),
    ("/encode", {"model": "reranker", "texts": ["a"]}, "model"),
    ("/v1/embeddings", {"model": "splade", "input": "a"}, "model"),
    ("/tokenize", {"model": "nope", "inputs": "a"}, "model"),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD)])
def test_bad_inputs_get_a_4xx_that_names_the_field(tasks: Tasks, path: str, body: dict[str, Any] | bytes,
                                                   param: str | None) -> None:
    if isinstance(body, bytes):  # JSON that a client library would not write: a lone surrogate
        response = httpx.post(f"{tasks.server.url}{path}", content=body, timeout=60,
                              headers={"content-type": "application/json"})
        body = json.loads(body)
    else:
        response = httpx.post(f"{tasks.server.url}{path}", json=body, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param or (error["param"] or "").startswith(param), error
    if param == "model":
        assert body.get("model", "tiny") in error["message"]
