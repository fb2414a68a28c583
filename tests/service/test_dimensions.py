"""Matryoshka `dimensions` on /encode and /v1/embeddings: only sizes the bundle lists (export --matryoshka-dims),
the first values of the pooled vector normalized after the cut, against transformers' vectors cut in NumPy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import torch
from tokenizers import Tokenizer

from tests.exporting import export_bundles, export_command
from tests.families import make_checkpoint
from tests.service.conftest import Server, running_server

pytestmark = pytest.mark.slow
TEXTS = ["the quick brown fox", "attention", "paris and zurich are cities"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, np.ndarray]]:
    root = tmp_path_factory.mktemp("matryoshka")
    reference = make_checkpoint("bert", root / "checkpoint")
    export_bundles(["hf", str(root / "checkpoint"), "--output", str(root / "bundle"), "--no-optimize",
                    "--matryoshka-dims", "32,16"])
    assert json.loads((root / "bundle" / "config.json").read_text())["serving"]["matryoshka_dimensions"] == [32, 16]
    tok = Tokenizer.from_file(str(root / "bundle" / "tokenizer.json"))
    pooled = []
    for text in TEXTS:  # one at a time: no padding in the reference
        ids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            pooled.append(reference(input_ids=ids).last_hidden_state[0].mean(0).numpy())
    with running_server(root / "bundle", root / "server.log") as server:
        yield server, np.stack(pooled)


def _cut(full: np.ndarray, d: int, normalize: bool) -> np.ndarray:
    cut = full[:, :d]
    return cut / np.linalg.norm(cut, axis=1, keepdims=True) if normalize else cut


@pytest.mark.parametrize(("d", "normalize"), [(32, True), (16, True), (32, False), (60, True)])
def test_encode_cuts_then_normalizes(served, d: int, normalize: bool) -> None:
    server, full = served
    r = httpx.post(f"{server.url}/encode", json={"texts": TEXTS, "dimensions": d, "normalize": normalize}, timeout=30)
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["embeddings"], dtype=np.float32)
    assert got.shape == (3, d)
    assert float(np.abs(got - _cut(full, d, normalize)).max()) <= 1e-4


def test_openai_client_dimensions(served) -> None:
    server, full = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    model = client.models.list().data[0]
    result = client.embeddings.create(model=model.id, input=TEXTS, dimensions=16)
    got = np.asarray([d.embedding for d in result.data], dtype=np.float32)
    assert float(np.abs(got - _cut(full, 16, normalize=False)).max()) <= 1e-4  # no sentence-transformers Normalize
    assert httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]["matryoshka_dimensions"] == [32, 16]


@pytest.mark.parametrize("d", [48, 0, -3, 61])
def test_sizes_the_bundle_does_not_list_are_refused(served, d: int) -> None:
    server, _ = served
    r = httpx.post(f"{server.url}/encode", json={"texts": ["a"], "dimensions": d}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["param"] == "dimensions"
    assert "this model was trained for 32, 16 besides its own size" in r.json()["error"]["message"]


def test_export_refuses_sizes_outside_the_model(tmp_path: Path) -> None:
    make_checkpoint("bert", tmp_path / "checkpoint")
    bad = export_command(["hf", str(tmp_path / "checkpoint"), "--output", str(tmp_path / "bundle"),
                          "--matryoshka-dims", "32,60"])
    assert bad.returncode == 1 and "Matryoshka dimensions [60]" in bad.stderr
