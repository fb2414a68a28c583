"""Locust users for attnserve: /encode, /encode with attention, /v1/embeddings, /rerank and /classify. Each user
works with a served model of its task (GET /v1/models): users whose task no served model has are left out.

    make loadtest URL=http://127.0.0.1:8000 USERS=32 DURATION=60s
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000          # web UI on :8089

Environment: ATTNSERVE_API_KEY (sent as a Bearer token), LOADTEST_MAX_TEXTS (texts per request, default 4).
Every response is checked (status, count, dimensions); a wrong one is a locust failure.
"""

from __future__ import annotations

import os
import random

from checks import check_classify, check_embeddings, check_encode, check_rerank, load_corpus, pick_texts
from locust import FastHttpUser, constant, events, task

CORPUS = load_corpus()
MAX_TEXTS = int(os.environ.get("LOADTEST_MAX_TEXTS", "4"))
MODEL: dict[str, object] = {}
BY_TASK: dict[str, dict] = {}  # task -> the first served model with it


@events.test_start.add_listener
def _describe_model(environment, **_kwargs) -> None:
    """Learn the served models' names, tasks and sizes once, so every answer can be checked; leave out the
    users of tasks no model here has."""
    import json
    import urllib.request

    request = urllib.request.Request(f"{environment.host}/v1/models", headers=_headers())
    with urllib.request.urlopen(request, timeout=30) as r:
        models = json.load(r)["data"]
    for model in models:
        BY_TASK.setdefault(model.get("task", "embed"), model)
    if "embed" in BY_TASK:
        MODEL.update(id=BY_TASK["embed"]["id"], dims=BY_TASK["embed"]["dimensions"])
    environment.user_classes[:] = [u for u in environment.user_classes if getattr(u, "needs", "embed") in BY_TASK]


def _headers() -> dict[str, str]:
    key = os.environ.get("ATTNSERVE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


class _Base(FastHttpUser):
    abstract = True
    wait_time = constant(0)  # closed loop: the next request leaves when the answer arrives

    def on_start(self) -> None:
        self.rng = random.Random()
        self.headers = _headers()

    def _post(self, path: str, payload: dict, name: str, check) -> None:
        with self.client.post(path, json=payload, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {r.text[:200]}")
                return
            problem = check(r.json())
            if problem:
                r.failure(problem)


class EncodeUser(_Base):
    weight = 6

    @task
    def encode(self) -> None:
        texts = pick_texts(self.rng, CORPUS, MAX_TEXTS)
        self._post("/encode", {"texts": texts, "truncate": True}, "/encode",
                   lambda body: check_encode(body, len(texts), int(MODEL["dims"])))


class AttentionUser(_Base):
    weight = 1

    @task
    def encode_with_attention(self) -> None:
        texts = pick_texts(self.rng, CORPUS, 2)
        payload = {"texts": texts, "truncate": True, "return_attentions": True, "attention_layers": [-1],
                   "attention_heads": "mean"}
        self._post("/encode", payload, "/encode (attentions)",
                   lambda body: check_encode(body, len(texts), int(MODEL["dims"]), attentions=True))


class EmbeddingsUser(_Base):
    weight = 2

    @task
    def embeddings(self) -> None:
        texts = pick_texts(self.rng, CORPUS, MAX_TEXTS)  # the longest corpus text is ~210 tokens: no truncation
        self._post("/v1/embeddings", {"model": MODEL["id"], "input": texts}, "/v1/embeddings",
                   lambda body: check_embeddings(body, len(texts), int(MODEL["dims"])))


class RerankUser(_Base):
    """One query and 2-16 documents from the corpus, Cohere-style, every document ranked."""

    weight = 2
    needs = "rerank"

    @task
    def rerank(self) -> None:
        texts = pick_texts(self.rng, CORPUS, 17)
        query, documents = texts[0], texts[1:] or [texts[0]]
        payload = {"model": BY_TASK["rerank"]["id"], "query": query, "documents": documents}
        self._post("/rerank", payload, "/rerank", lambda body: check_rerank(body, len(documents)))


class ClassifyUser(_Base):
    """Texts and text pairs, every label's score."""

    weight = 2
    needs = "classify"

    @task
    def classify(self) -> None:
        texts = pick_texts(self.rng, CORPUS, MAX_TEXTS)
        inputs = [t if i % 2 == 0 else [t, texts[0]] for i, t in enumerate(texts)]
        model = BY_TASK["classify"]
        self._post("/classify", {"model": model["id"], "texts": inputs, "truncate": True}, "/classify",
                   lambda body: check_classify(body, len(inputs), model["labels"]))
