"""The POST routes answer through plain Starlette routes ahead of FastAPI's own (service/routes/plain.py): every
body, good or bad, gets the answer FastAPI's own route gives (the reference: the same app with the plain routes
taken out), FastAPI's dependency solving is never reached, and the OpenAPI schema still documents them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from service.app import create_app
from service.settings import Settings

GOOD: dict[str, list[Any]] = {
    "/encode": [{"texts": ["hello world", "a b c"]}, {"tokens": [[2, 5, 3], [7]], "return_token_embeddings": True},
                {"texts": ["attention please"], "return_attentions": True, "attention_heads": "mean"},
                {"texts": ["x"], "encoding_format": "base64", "pooling": "cls", "normalize": False}],
    "/v1/embeddings": [{"model": "tiny", "input": ["hello", "world"]}, {"model": "tiny", "input": [[2, 5, 3]]},
                       {"model": "tiny", "input": "one", "encoding_format": "base64"}],
    "/tokenize": [{"inputs": ["hello world"]}, {"inputs": "one", "add_special_tokens": False}],
    "/decode": [{"ids": [[2, 5, 3]]}, {"ids": [7, 8], "skip_special_tokens": False}],
    "/classify": [{"texts": ["a", ["b", "c"]]}],  # the tiny model embeds: 422 naming the task, from both
    "/rerank": [{"query": "q", "documents": ["a", "b"]}],
    "/v1/rerank": [{"query": "q", "texts": ["a"]}],
}
KSERVE_TEXT = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "a b"]}]}
KSERVE: dict[str, list[Any]] = {  # the Open Inference Protocol's infer: the model and version are in the path
    "/v2/models/tiny/infer": [KSERVE_TEXT, {**KSERVE_TEXT, "outputs": [{"name": "last_hidden_state"}]},
                              {"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "INT64",
                                           "data": [2, 5, 3]}], "parameters": {"truncate": "yes"}}],
    "/v2/models/tiny/versions/1/infer": [KSERVE_TEXT], "/v2/models/tiny/versions/9/infer": [KSERVE_TEXT],
    "/v2/models/nope/infer": [KSERVE_TEXT], "/v2/models/t%69ny/infer": [KSERVE_TEXT],
}
BAD: list[bytes] = [
    b"", b"   ", b"{", b'{"texts": [', b"[1]", b"null", b'"x"', b"1e400", b"true", b"\xff\xfe", b"{}",
    b'{"unknown": 1}', b'{"texts": ["\\ud800"]}', b'{"texts": [1]}', b'{"tokens": [[' + b"9" * 5000 + b"]]}",
    b'{"ids": [[1, 2.5]]}', b'{"inputs": 3}', b'{"query": 1}', b'{"texts": [["a", "b", "c"]]}',
    b"[" * 5000 + b"]" * 5000, b'{"model": "nope", "input": "x", "texts": ["x"], "query": "x", "inputs": "x"}',
]


def _is_plain(route: Any) -> bool:
    """A plain POST route (FastAPI's own are APIRoutes, a subclass of Route)."""
    return type(route) is Route and route.methods == {"POST"}


def _without_plain_routes(app: Any) -> Any:
    app.router.routes[:] = [r for r in app.router.routes if not _is_plain(r)]
    return app


@pytest.fixture(scope="module")
def clients(tiny_bundle: Path) -> Iterator[tuple[TestClient, TestClient]]:
    plain = create_app(Settings(model=tiny_bundle))
    reference = _without_plain_routes(create_app(Settings(model=tiny_bundle)))
    with TestClient(plain) as p, TestClient(reference) as r:
        yield p, r


def _post(client: TestClient, path: str, body: Any) -> tuple[int, Any, str | None]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    return response.status_code, response.json(), response.headers.get("content-type")


@pytest.mark.parametrize("path", sorted({**GOOD, **KSERVE}))
def test_each_body_gets_fastapis_answer(clients: tuple[TestClient, TestClient], path: str) -> None:
    plain, reference = clients
    for body in [*{**GOOD, **KSERVE}[path], *BAD]:
        got, want = _post(plain, path, body), _post(reference, path, body)
        assert got == want, (path, body[:80] if isinstance(body, bytes) else body)
    refused = {_post(plain, path, body)[0] for body in BAD}  # the bad bodies were refused, not served
    assert refused >= {400, 422} if path in GOOD else refused <= {400, 404}, refused


def test_every_post_route_has_its_plain_route(clients: tuple[TestClient, TestClient]) -> None:
    plain, _ = clients
    schema = plain.get("/openapi.json").json()
    posted = {path for path, methods in schema["paths"].items() if "post" in methods}
    with_json_body = {path for path in posted
                      if "application/json" in schema["paths"][path]["post"].get("requestBody", {}).get("content", {})}
    assert with_json_body == set(GOOD)  # the schema still documents each, with its request body
    assert posted - with_json_body == {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"}
    ahead = [r.path for r in plain.app.router.routes if _is_plain(r)]
    assert sorted(ahead) == sorted(posted)


def test_fastapis_dependency_solving_is_not_on_the_path(clients: tuple[TestClient, TestClient],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plain, reference = clients

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("FastAPI's request handling was used")

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", broken)
    for path, bodies in {**GOOD, **KSERVE}.items():
        assert _post(plain, path, bodies[0])[0] in (200, 404, 422), path
    with pytest.raises(RuntimeError, match="FastAPI's request handling"):  # the check can fail: FastAPI's route
        _post(reference, "/encode", GOOD["/encode"][0])
