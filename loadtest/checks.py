"""Response checks shared by the locust users and the benchmark: a wrong answer is a failure, not a success."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_corpus(paragraphs: bool = True) -> list[str]:
    """The shipped sentences (and paragraphs, for realistic mixed lengths)."""
    texts = (HERE / "corpus.txt").read_text(encoding="utf-8").splitlines()
    if paragraphs:
        texts += (HERE / "paragraphs.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in texts if t]


def pick_texts(rng: random.Random, corpus: list[str], max_texts: int) -> list[str]:
    return rng.sample(corpus, rng.randint(1, max_texts))


def check_encode(body: Any, n_texts: int, dims: int, attentions: bool = False) -> str | None:
    """None when the /encode answer has one vector of ``dims`` per text (and well-formed attention)."""
    if not isinstance(body, dict):
        return "response is not a JSON object"
    vectors = body.get("embeddings")
    if not isinstance(vectors, list) or len(vectors) != n_texts:
        return f"expected {n_texts} embeddings, got {None if vectors is None else len(vectors)}"
    if any(not isinstance(v, list) or len(v) != dims for v in vectors):
        return f"an embedding does not have {dims} dimensions"
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or len(tokens) != n_texts:
        return "tokens missing or of the wrong count"
    if attentions:
        att = body.get("attentions")
        if not isinstance(att, list) or len(att) != n_texts:
            return "attentions missing or of the wrong count"
        for a, toks in zip(att, tokens, strict=True):
            n = len(toks)
            if len(a) != 1 or len(a[0]) != 1 or len(a[0][0]) != n or any(len(row) != n for row in a[0][0]):
                return f"attention matrix is not [1][1][{n}][{n}]"
    return None


def check_embeddings(body: Any, n_inputs: int, dims: int) -> str | None:
    """None when the /v1/embeddings answer is OpenAI-shaped with ``n_inputs`` vectors of ``dims``."""
    if not isinstance(body, dict) or body.get("object") != "list":
        return "response is not an OpenAI embeddings list"
    data = body.get("data")
    if not isinstance(data, list) or len(data) != n_inputs:
        return f"expected {n_inputs} embeddings, got {None if data is None else len(data)}"
    if [d.get("index") for d in data] != list(range(n_inputs)):
        return "indices are not 0..n-1 in order"
    if any(len(d.get("embedding", [])) != dims for d in data):
        return f"an embedding does not have {dims} dimensions"
    return None


def check_rerank(body: Any, n_documents: int) -> str | None:
    """None when the Cohere-shaped /rerank answer ranks every document once, best first."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != n_documents:
        return f"expected {n_documents} results, got {None if results is None else len(results)}"
    if sorted(r.get("index") for r in results) != list(range(n_documents)):
        return "result indices are not each document once"
    scores = [r.get("relevance_score") for r in results]
    if any(not isinstance(x, float) for x in scores) or scores != sorted(scores, reverse=True):
        return "relevance scores are not numbers, best first"
    return None


def check_classify(body: Any, n_inputs: int, labels: list[str]) -> str | None:
    """None when /classify answers every input with every label once, scores best first."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != n_inputs:
        return f"expected {n_inputs} results, got {None if results is None else len(results)}"
    for row in results:
        if sorted(r.get("label") for r in row) != sorted(labels):
            return "a result does not list each label once"
        scores = [r.get("score") for r in row]
        if scores != sorted(scores, reverse=True):
            return "label scores are not best first"
    return None
