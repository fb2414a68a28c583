"""API keys on every route: inference and model routes need the key, and a missing key is refused before
the body is read; health, readiness, metrics, the docs and the explorer page are public (README)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server, running_server

KEY = "s3cret-key"
PROTECTED = [("POST", "/encode"), ("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("POST", "/tokenize"),
             ("POST", "/decode"), ("POST", "/classify"), ("POST", "/rerank"), ("POST", "/v1/rerank"),
             ("GET", "/v2/models/tiny"), ("GET", "/v2/models/tiny/ready"), ("POST", "/v2/models/tiny/infer"),
             ("GET", "/v2/models/tiny/versions/1"), ("GET", "/v2/models/tiny/versions/1/ready"),
             ("POST", "/v2/models/tiny/versions/1/infer")]
PUBLIC = [("GET", "/v2"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"),
          ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/docs"),
          ("GET", "/openapi.json"), ("GET", "/explorer")]


@pytest.fixture(scope="module")
def keyed_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("auth") / "server.log"
    with running_server(tiny_bundle, log, api_keys=f"other,{KEY}") as server:
        yield server


def test_every_route_is_listed_here(keyed_server: Server) -> None:
    paths = {p.replace("{name}", "tiny").replace("{version}", "1")
             for p in httpx.get(f"{keyed_server.url}/openapi.json").json()["paths"]}
    assert paths <= {p for _, p in PROTECTED + PUBLIC}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {KEY}", "Bearer", f"Bearer {KEY}x"])
def test_protected_route_without_a_valid_key_gets_401(keyed_server: Server, method: str, path: str,
                                                      auth: str | None) -> None:
    headers = {"authorization": auth} if auth else {}
    r = httpx.request(method, f"{keyed_server.url}{path}", headers=headers, json={"texts": ["a"]}, timeout=10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    error = r.json()["error"]
    if path.startswith("/v2/"):  # the Open Inference Protocol's own error shape
        assert error == "missing or invalid API key: send 'Authorization: Bearer <key>'"
    else:
        assert error["param"] == "authorization"


@pytest.mark.parametrize("body", [b'{"texts": [', b"x" * 5_000_000, b'{"texts": ["\\ud800"]}'],
                         ids=["malformed", "too-large", "surrogate"])
def test_bad_body_without_a_key_gets_401_not_a_body_error(keyed_server: Server, body: bytes) -> None:
    r = httpx.post(f"{keyed_server.url}/encode", content=body, headers={"content-type": "application/json"},
                   timeout=10)
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/encode", {"texts": ["a"]}), ("POST", "/v1/embeddings", {"model": "tiny", "input": "a"}),
    ("GET", "/v1/models", None),
])
def test_protected_route_with_the_key_answers(keyed_server: Server, method: str, path: str, body) -> None:
    r = httpx.request(method, f"{keyed_server.url}{path}", headers={"authorization": f"Bearer {KEY}"}, json=body,
                      timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_public_route_needs_no_key(keyed_server: Server, method: str, path: str) -> None:
    assert httpx.request(method, f"{keyed_server.url}{path}", timeout=10).status_code == 200
