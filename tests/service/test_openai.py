"""The official openai client against /v1/embeddings on a real server, and API keys on and off."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from .conftest import Server, running_server

KEYS = "first-key,second-key"


@pytest.fixture(scope="module")
def keyed_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tiny_bundle, tmp_path_factory.mktemp("logs") / "server.log", api_keys=KEYS) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(minilm_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(minilm_bundle, tmp_path_factory.mktemp("logs") / "server.log") as server:
        yield server


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_openai_client_gets_the_same_vectors_as_encode(open_server: Server, encoding_format) -> None:
    client = openai.OpenAI(base_url=f"{open_server.url}/v1", api_key="unused", max_retries=0)
    texts = ["The quick brown fox.", "Zürich café ✓", ""]
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, **kwargs)
    want = httpx.post(f"{open_server.url}/encode", json={"texts": texts}).json()
    assert [d.index for d in result.data] == [0, 1, 2]
    if encoding_format == "base64":  # asked for explicitly, the client hands the strings over as they came
        got = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in result.data]
    else:  # float, or the client's default (it asks for base64 and decodes it itself)
        got = [d.embedding for d in result.data]
    np.testing.assert_allclose(got, want["embeddings"], atol=1e-6)
    assert result.usage.prompt_tokens == result.usage.total_tokens == want["usage"]["prompt_tokens"]
    assert result.model == "all-MiniLM-L6-v2"


def test_openai_client_single_string_and_token_lists(open_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{open_server.url}/v1", api_key="unused", max_retries=0)
    one = client.embeddings.create(model="all-MiniLM-L6-v2", input="hello world")
    ids = httpx.post(f"{open_server.url}/encode", json={"texts": ["hello world"]}).json()
    by_tokens = client.embeddings.create(model="all-MiniLM-L6-v2", input=[[101, 7592, 2088, 102]])
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    assert ids["tokens"] == [["[CLS]", "hello", "world", "[SEP]"]]
    np.testing.assert_allclose(by_tokens.data[0].embedding, one.data[0].embedding, atol=1e-6)


def test_openai_client_unknown_model_is_not_found(open_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{open_server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="unknown model 'text-embedding-3-small'"):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_keys_let_the_openai_client_in(keyed_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="second-key", max_retries=0)
    assert len(client.embeddings.create(model="tiny", input=["a", "b"]).data) == 2


def test_wrong_key_is_401_for_the_openai_client(keyed_server: Server) -> None:
    client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="first-key-but-longer", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="tiny", input="a")


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"authorization": "Bearer nope"}, 401), ({"authorization": "first-key"}, 401),
     ({"authorization": "Basic first-key"}, 401), ({"authorization": "Bearer first-key"}, 200),
     ({"authorization": "bearer second-key"}, 200)],
    ids=["none", "wrong", "no-scheme", "basic", "first", "second-lowercase-scheme"],
)
def test_encode_needs_a_key(keyed_server: Server, headers: dict, status: int) -> None:
    r = httpx.post(f"{keyed_server.url}/encode", json={"texts": ["a"]}, headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["param"] == "authorization"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_routes_stay_open(keyed_server: Server, path: str) -> None:
    assert httpx.get(f"{keyed_server.url}{path}").status_code == 200


def test_models_route_needs_a_key(keyed_server: Server) -> None:
    assert httpx.get(f"{keyed_server.url}/v1/models").status_code == 401
    ok = httpx.get(f"{keyed_server.url}/v1/models", headers={"authorization": "Bearer first-key"})
    assert ok.json()["data"][0]["id"] == "tiny"
