"""Several models in one app: names, routing by `model`, readiness waiting for all, per-model batchers and
metrics, and the start-up refusals (two models under one name, a model that fails to load)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bundle import BundleError
from service.app import create_app
from service.settings import Settings
from tests.exporting import export_bundles


@pytest.fixture(scope="module")
def other_tiny(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with another seed: other weights, so answers show which model gave them."""
    out = tmp_path_factory.mktemp("tiny7") / "bundle"
    export_bundles(["tiny", "--seed", "7", "--no-optimize", "--output", str(out)])
    return out


def test_requests_route_by_model_and_the_first_is_the_default(tiny_bundle: Path, other_tiny: Path) -> None:
    app = create_app(Settings(model=f"{tiny_bundle},seven={other_tiny}", warmup=False))
    with TestClient(app) as client:
        models = client.get("/v1/models").json()["data"]
        assert [(m["id"], m["task"]) for m in models] == [("tiny", "embed"), ("seven", "embed")]
        body = {"texts": ["several models"], "normalize": False}
        default = client.post("/encode", json=body).json()
        first = client.post("/encode", json={**body, "model": "tiny"}).json()
        seven = client.post("/encode", json={**body, "model": "seven"}).json()
        assert default == first and seven["model"] == "seven"
        assert not np.allclose(first["embeddings"][0], seven["embeddings"][0], atol=1e-3)
        openai = client.post("/v1/embeddings", json={"model": "seven", "input": "several models"}).json()
        assert openai["model"] == "seven"
        missing = client.post("/encode", json={**body, "model": "eight"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "model: unknown model 'eight'; this server serves 'tiny', 'seven'"
        assert client.post("/tokenize", json={"inputs": "x", "model": "seven"}).status_code == 200
        assert client.get("/v2/models/seven").status_code == 200
        metrics = client.get("/metrics").text
        assert 'attnserve_sequences_total{model="seven"} 2.0' in metrics  # /encode and /v1/embeddings
        assert 'attnserve_sequences_total{model="tiny"} 2.0' in metrics
        # each request counted under the model that answered it; a name not served never becomes a label
        requests = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("attnserve_requests_total{")}
        assert requests == {
            'attnserve_requests_total{model="",route="/v1/models",status="200"}': 1.0,
            'attnserve_requests_total{model="tiny",route="/encode",status="200"}': 2.0,
            'attnserve_requests_total{model="seven",route="/encode",status="200"}': 1.0,
            'attnserve_requests_total{model="seven",route="/v1/embeddings",status="200"}': 1.0,
            'attnserve_requests_total{model="",route="/encode",status="404"}': 1.0,
            'attnserve_requests_total{model="seven",route="/tokenize",status="200"}': 1.0,
            'attnserve_requests_total{model="seven",route="/v2",status="200"}': 1.0,
        }
        assert 'attnserve_request_duration_seconds_count{model="seven",route="/v1/embeddings"} 1.0' in metrics
        engines = app.state.ctx.engines
        assert engines["tiny"].batcher is not engines["seven"].batcher


def test_two_models_under_one_name_are_refused(tiny_bundle: Path) -> None:
    app = create_app(Settings(model=[tiny_bundle, tiny_bundle], warmup=False))
    with pytest.raises(BundleError, match="two models are served as 'tiny' .*name one with NAME=DIR"), TestClient(app):
        pass
    assert app.state.ctx.ready is False


def test_not_ready_until_every_model_is_loaded(tiny_bundle: Path, tmp_path: Path) -> None:
    """A second model that fails stops the whole start (one clear error), and the first model's batcher with it."""
    before = {t.name for t in threading.enumerate()}
    app = create_app(Settings(model=[tiny_bundle, tmp_path / "missing"], warmup=False))
    client = TestClient(app)
    assert client.get("/readyz").status_code == 503
    with pytest.raises(BundleError, match="is not a model bundle"), client:
        pass
    assert app.state.ctx.ready is False and not app.state.ctx.engines
    assert {t.name for t in threading.enumerate()} - before == set()  # no batcher thread left behind


def test_serve_takes_model_more_than_once(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--model", str(tiny_bundle), "--model",
                             str(copy)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "two models are served as 'tiny'" in result.stderr  # both were read: the second --model counted


def test_precision_per_model(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ATTNSERVE_MODEL_PRECISION gives a served model its own precision; the others keep ATTNSERVE_PRECISION.
    (int8 is refused on every machine: it shows which model a precision reached.)"""
    from pydantic import ValidationError

    models = f"a={tiny_bundle},b={tiny_bundle}"
    monkeypatch.setenv("ATTNSERVE_MODEL_PRECISION", "b=int8, a=fp32")
    settings = Settings(model=models, warmup=False)
    assert settings.model_precision == {"b": "int8", "a": "fp32"}
    assert settings.for_model("b").precision == "int8" and settings.for_model("a") is settings
    with pytest.raises(BundleError, match=r"^model b \(ATTNSERVE_MODEL_PRECISION b=int8\): ATTNSERVE_PRECISION=int8 "
                       "is not offered"), TestClient(create_app(settings)):
        pass
    # every model named: the global setting (int8 here) reaches none of them
    monkeypatch.setenv("ATTNSERVE_MODEL_PRECISION", "a=fp32,b=fp32")
    with TestClient(create_app(Settings(model=models, precision="int8", warmup=False))) as client:
        data = client.get("/v1/models").json()["data"]
        assert [(m["id"], m["precision"]) for m in data] == [("a", "fp32"), ("b", "fp32")]
    monkeypatch.setenv("ATTNSERVE_MODEL_PRECISION", "c=fp32")
    with pytest.raises(BundleError, match=r"ATTNSERVE_MODEL_PRECISION names c, which is not served \(served: a, b\)"), \
            TestClient(create_app(Settings(model=models, warmup=False))):
        pass
    monkeypatch.delenv("ATTNSERVE_MODEL_PRECISION")
    for bad in ("bf16", "=bf16", "a=fp8"):
        with pytest.raises(ValidationError, match="NAME=PRECISION|Input should be 'fp32', 'bf16', 'fp16' or 'int8'"):
            Settings(model=models, model_precision=bad)
