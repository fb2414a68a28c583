"""The locust users: their checks catch wrong answers, and a short headless run against a live service passes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.checks import check_embeddings, check_encode, load_corpus
from tests.service.conftest import running_server

ROOT = Path(__file__).resolve().parents[2]


def _encode_body(n: int, dims: int, tokens: int = 3) -> dict:
    return {"embeddings": [[0.0] * dims for _ in range(n)], "tokens": [["t"] * tokens for _ in range(n)],
            "attentions": [[[[[0.0] * tokens for _ in range(tokens)]]] for _ in range(n)]}


def test_check_encode_accepts_a_good_answer() -> None:
    assert check_encode(_encode_body(2, 8), 2, 8, attentions=True) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"embeddings": [[0.0] * 8]}, "expected 2 embeddings, got 1"),
        ({**_encode_body(2, 8), "embeddings": [[0.0] * 8, [0.0] * 7]}, "does not have 8 dimensions"),
        ({**_encode_body(2, 8), "attentions": [[[[[0.0]]]]] * 2}, "attention matrix is not [1][1][3][3]"),
        ([], "not a JSON object"),
    ],
)
def test_check_encode_catches_wrong_answers(body, problem: str) -> None:
    assert problem in (check_encode(body, 2, 8, attentions=True) or "")


def test_check_embeddings() -> None:
    good = {"object": "list", "data": [{"index": i, "embedding": [0.0] * 4} for i in range(3)]}
    assert check_embeddings(good, 3, 4) is None
    assert "indices" in check_embeddings({**good, "data": good["data"][::-1]}, 3, 4)
    assert "expected 2" in check_embeddings(good, 2, 4)


def test_corpus_has_mixed_lengths() -> None:
    short, everything = load_corpus(paragraphs=False), load_corpus()
    assert len(short) == 900 and len(everything) == 1000
    assert max(map(len, everything)) > 4 * (sum(map(len, short)) / len(short))


def _locust(models: Path | list[str], tmp_path: Path, users: int) -> dict[str, dict[str, str]]:
    with running_server(models, tmp_path / "server.log") as server:
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
             "--host", server.url, "-u", str(users), "-r", str(users), "-t", "8s", "--csv", str(tmp_path / "locust"),
             "--only-summary", "--stop-timeout", "5"],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    with (tmp_path / "locust_stats.csv").open() as f:
        return {row["Name"]: row for row in csv.DictReader(f) if row["Name"] != "Aggregated"}


def test_short_headless_locust_run(minilm_bundle: Path, tmp_path: Path) -> None:
    rows = _locust(minilm_bundle, tmp_path, 6)
    assert set(rows) == {"/encode", "/encode (attentions)", "/v1/embeddings"}  # no reranker, no classifier here
    for name in rows:
        assert int(rows[name]["Request Count"]) > 0, rows.keys()
        assert int(rows[name]["Failure Count"]) == 0


def test_rerank_and_classify_users(minilm_bundle: Path, tmp_path: Path) -> None:
    """Served beside the embedder, a cross-encoder and a classifier get their own users, answers checked."""
    from tests.exporting import export_bundles
    from tests.families import make_checkpoint

    heads = {"reranker": ("roberta", ["score"]), "nli": ("bert", ["a", "b", "c"])}
    for name, (family, labels) in heads.items():
        make_checkpoint(family, tmp_path / f"{name}-checkpoint", head="classify", labels=labels)
    export_bundles(*(["hf", str(tmp_path / f"{name}-checkpoint"), "--output", str(tmp_path / name), "--no-optimize"]
                     for name in heads))
    models = [str(minilm_bundle), *(f"{name}={tmp_path / name}" for name in heads)]
    rows = _locust(models, tmp_path, 10)
    for name in ("/rerank", "/classify", "/encode"):
        assert int(rows[name]["Request Count"]) > 0, rows.keys()
        assert int(rows[name]["Failure Count"]) == 0
