"""Pooling, normalization and prompts from a checkpoint's sentence-transformers files, served by a real server
and compared with sentence-transformers itself (last-token pooling, L2, named and default prompts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.exporting import export_bundles, export_command
from tests.families import make_checkpoint
from tests.service.conftest import Server, running_server

pytestmark = pytest.mark.slow
PROMPTS = {"query": "search_query: ", "document": "search_document: "}
TEXTS = ["the quick brown fox", "attention", "paris and zurich are cities"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prompted") / "checkpoint"
    make_checkpoint("nomic_bert", folder, sentence_transformers={
        "pooling": "last", "normalize": True, "max_seq_length": 48, "prompts": PROMPTS,
        "default_prompt_name": "document"})
    # what sentence-transformers needs to load the tokenizer through transformers (the service reads only
    # tokenizer.json)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"}))
    return folder


@pytest.fixture(scope="module")
def bundles(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two bundles of the checkpoint, exported side by side: "bundle" with the checkpoint's default prompt,
    "query" with --default-prompt query."""
    out = tmp_path_factory.mktemp("prompted-bundle")
    export_bundles(*(["hf", str(checkpoint), "--output", str(out / name), "--no-optimize", *extra]
                     for name, extra in (("bundle", []), ("query", ["--default-prompt", "query"]))))
    return out


@pytest.fixture(scope="module")
def server(bundles: Path) -> Iterator[Server]:
    with running_server(bundles / "bundle", bundles / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def reference(checkpoint: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(checkpoint), device="cpu", local_files_only=True)


def _encode(server: Server, **body) -> httpx.Response:
    return httpx.post(f"{server.url}/encode", json=body, timeout=30)


@pytest.mark.parametrize("prompt_name", ["query", "document", None])
def test_prompts_equal_sentence_transformers(server: Server, reference, prompt_name: str | None) -> None:
    body = {"texts": TEXTS, **({"prompt_name": prompt_name} if prompt_name else {})}
    got = np.asarray(_encode(server, **body).json()["embeddings"], dtype=np.float32)
    want = reference.encode(TEXTS, prompt_name=prompt_name, convert_to_numpy=True)  # None: the default prompt
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(got - want).max()) <= 1e-4
    # and the prompt matters: another prompt gives other vectors
    other = reference.encode(TEXTS, prompt_name="query" if prompt_name != "query" else "document")
    assert float(np.abs(got - other).max()) > 1e-2


def test_prompt_tokens_are_part_of_the_input(server: Server) -> None:
    answer = _encode(server, texts=["paris"], prompt_name="query").json()
    assert answer["tokens"][0][:4] == ["[CLS]", "search", "_", "query"]
    assert answer["usage"]["prompt_tokens"] == len(answer["tokens"][0])


def test_openai_client_sends_prompt_name(server: Server, reference) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0]
    result = client.embeddings.create(model=model.id, input=TEXTS, extra_body={"prompt_name": "query"})
    got = np.asarray([d.embedding for d in result.data], dtype=np.float32)
    assert float(np.abs(got - reference.encode(TEXTS, prompt_name="query")).max()) <= 1e-4


def test_models_route_lists_prompts(server: Server) -> None:
    model = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]
    assert model["prompts"] == PROMPTS and model["default_prompt_name"] == "document"
    assert (model["pooling"], model["normalize"], model["max_length"]) == ("last", True, 48)


@pytest.mark.parametrize(
    ("body", "message"),
    [({"texts": ["a"], "prompt_name": "passage"}, "'passage' is not one of this model's prompts ('document', 'query')"),
     ({"tokens": [[5, 6]], "prompt_name": "query"}, "prompts apply to texts"),
     ({"texts": ["a"], "prompt_name": 3}, "prompt_name")],
)
def test_bad_prompt_names_are_refused(server: Server, body: dict, message: str) -> None:
    response = _encode(server, **body)
    assert response.status_code == 422 and message in response.text, response.text


def test_export_sets_and_checks_the_default_prompt(checkpoint: Path, bundles: Path, tmp_path: Path) -> None:
    assert json.loads((bundles / "query" / "config.json").read_text())["serving"]["default_prompt_name"] == "query"
    assert json.loads((bundles / "bundle" / "config.json").read_text())["serving"]["default_prompt_name"] == "document"
    refused = export_command(["hf", str(checkpoint), "--output", str(tmp_path / "x"), "--no-optimize",
                              "--default-prompt", "passage"])
    assert refused.returncode == 1 and "default prompt 'passage' is not one of the model's prompts" in refused.stderr
