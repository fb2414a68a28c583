"""Start-up: settings, the bundle checked against config.json, provider choice, no torch in the service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bundle import BundleError, load_bundle
from service.app import create_app
from service.runtime import Runtime, choose_providers
from service.settings import Settings

from .conftest import running_server


@pytest.fixture
def bundle_copy(tmp_path: Path, tiny_bundle: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def _edit_config(bundle: Path, edit) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    edit(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNSERVE_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("ATTNSERVE_API_KEYS", "a, b,,c")
    monkeypatch.setenv("ATTNSERVE_MODEL", "/models/x")
    s = Settings()
    assert (s.max_batch_size, s.api_keys, s.model) == (3, ["a", "b", "c"], [Path("/models/x")])
    assert Settings(max_batch_size=5).max_batch_size == 5  # explicit values win over the environment
    monkeypatch.setenv("ATTNSERVE_MODEL", "/models/x, rerank=/models/y")
    assert Settings().served_models() == [(None, Path("/models/x")), ("rerank", Path("/models/y"))]
    assert Settings(model="/m/a=b", served_name="e5").served_models() == [("e5", Path("/m/a=b"))]  # a path with =


def test_a_lone_batch_gets_every_core_with_the_same_numbers(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import onnxruntime as ort

    monkeypatch.setattr("service.runtime.os.sched_getaffinity", lambda _: {0, 1, 2, 3})
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle))
    assert runtime.plan.workers == 2 and runtime.lone_session is not None
    assert runtime.lone_session.get_session_options().intra_op_num_threads == 4
    assert runtime.sessions[False].get_session_options().intra_op_num_threads == 2

    ids = np.asarray([2, 40, 41, 42, 3], dtype=np.int64)
    direct = ort.InferenceSession(str(tiny_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    hidden, pooled = direct.run(None, {"input_ids": ids[None], "attention_mask": np.ones((1, 5), np.int64)})
    alone = runtime.run_alone([ids], False)[0]
    np.testing.assert_allclose(alone.hidden, hidden[0], atol=1e-5)
    np.testing.assert_allclose(alone.pooled, pooled[0], atol=1e-5)
    assert runtime.run_alone([ids], True)[0].attentions is not None  # attention requests keep their own graph

    assert Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, lone_batch_all_cores=False)).lone_session \
        is None
    monkeypatch.setattr("service.runtime.os.sched_getaffinity", lambda _: {0})
    assert Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle)).lone_session is None  # one core: no gain


def test_batches_run_on_the_packed_graph_with_the_padded_graphs_numbers(minilm_bundle: Path) -> None:
    import numpy as np

    bundle = load_bundle(minilm_bundle)
    packed = Runtime(bundle, Settings(model=minilm_bundle, lone_batch_all_cores=False))
    padded = Runtime(bundle, Settings(model=minilm_bundle, graph="default"))
    assert (packed.plan.batch_graph, packed.packed_session is not None) == ("packed", True)
    assert (padded.plan.batch_graph, padded.packed_session) == ("default", None)
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1000, 30000, n, dtype=np.int64) for n in (30, 1, 12, 7)]
    for got, want in zip(packed.run(sequences, False), padded.run(sequences, False), strict=True):
        assert got.hidden.shape == want.hidden.shape and got.attentions is None
        np.testing.assert_allclose(got.hidden, want.hidden, atol=1e-4)
        np.testing.assert_allclose(got.pooled, want.pooled, atol=1e-5)
    calls = []
    packed._run_packed = lambda seqs: calls.append(len(seqs)) or []  # type: ignore[method-assign]
    assert len(packed.run(sequences[:1], False)) == 1 and calls == []  # one sequence: nothing to unpad
    with_attentions = packed.run(sequences[:2], True)  # attention requests stay on the padded attention graph
    assert calls == []
    assert [r.attentions.shape for r in with_attentions] == [(6, 12, 30, 30), (6, 12, 1, 1)]


def test_every_session_reads_one_shared_copy_of_the_token_embedding(minilm_bundle: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    runtime = Runtime(load_bundle(minilm_bundle), Settings(model=minilm_bundle))
    assert list(runtime.shared) == ["encoder.token_embedding.weight"] and runtime.lone_session is not None
    table = runtime.shared["encoder.token_embedding.weight"]
    seqs = [np.array([101, 7592, 2088, 102]), np.array([101, 7592, 102])]
    paths = {  # each of the four sessions
        "optimized": lambda: runtime.run(seqs[:1], False)[0].pooled,
        "attentions": lambda: runtime.run(seqs[:1], True)[0].pooled,
        "lone": lambda: runtime.run(seqs[:1], False, alone=True)[0].pooled,
        "packed": lambda: runtime.run(seqs, False)[0].pooled,
    }
    plain = ort.InferenceSession(str(minilm_bundle / "model_optimized.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = seqs[0][None], np.ones((1, 4), dtype=np.int64)
    want = plain.run(None, {"input_ids": ids, "attention_mask": mask})[1][0]  # ONNX Runtime reads the file itself
    for kind, run in paths.items():
        np.testing.assert_allclose(run(), want, atol=1e-5, err_msg=kind)
    saved = table[7592].copy()
    table[7592] = 0.0  # "hello": changed in the one copy, it changes in every session
    try:
        for kind, run in paths.items():
            assert np.abs(run() - want).max() > 1e-3, kind
    finally:
        table[7592] = saved
    for kind, run in paths.items():
        np.testing.assert_allclose(run(), want, atol=1e-5, err_msg=kind)


def test_shared_tensor_outside_its_file_is_refused(bundle_copy: Path) -> None:
    _edit_config(bundle_copy, lambda cfg: cfg.update(shared_initializers={"file": "tokenizer.json", "tensors": [
        {"name": "table", "dtype": "float32", "shape": [10**6], "offset": 0, "length": 4 * 10**6}]}))
    with pytest.raises(BundleError, match="shared tensor 'table' does not match tokenizer.json"):
        load_bundle(bundle_copy)


def test_packed_graph_is_optional_unless_asked_for(bundle_copy: Path) -> None:
    def drop_packed(cfg: dict) -> None:
        del cfg["graphs"]["packed"], cfg["files"]["model_packed.onnx"]

    _edit_config(bundle_copy, drop_packed)
    (bundle_copy / "model_packed.onnx").unlink()
    bundle = load_bundle(bundle_copy)
    assert Runtime(bundle, Settings(model=bundle_copy)).plan.batch_graph == "optimized"  # an older bundle still serves
    with pytest.raises(BundleError, match="ATTNSERVE_GRAPH=packed but the bundle has no packed graph"):
        Runtime(bundle, Settings(model=bundle_copy, graph="packed"))


def test_the_batcher_takes_the_packed_graphs_padding_limit(tiny_bundle: Path) -> None:
    with TestClient(create_app(Settings(model=tiny_bundle, packed_padding_ratio=1.7))) as client:
        assert client.app.state.ctx.engine.batcher.max_padding_ratio == 1.7
        assert client.get("/v1/models").json()["data"][0]["graphs"]["batches"] == "packed"
    with TestClient(create_app(Settings(model=tiny_bundle, graph="optimized", max_padding_ratio=1.2))) as client:
        assert client.app.state.ctx.engine.batcher.max_padding_ratio == 1.2


def test_graph_that_disagrees_with_config_is_refused(bundle_copy: Path) -> None:
    def rename(cfg: dict) -> None:
        cfg["graphs"]["attentions"]["outputs"][2]["name"] = "attention_probs"

    _edit_config(bundle_copy, rename)
    with pytest.raises(BundleError, match="model_attentions.onnx disagrees with config.json: outputs are "
                                          r"\['last_hidden_state', 'pooled', 'attentions'\].*export the bundle again"):
        Runtime(load_bundle(bundle_copy), Settings(model=bundle_copy))


def test_dimension_mismatch_is_refused(bundle_copy: Path) -> None:
    _edit_config(bundle_copy, lambda cfg: cfg["serving"].update(dimensions=128))
    with pytest.raises(BundleError, match="last_hidden_state axis 2 is 64, config.json says 128"):
        Runtime(load_bundle(bundle_copy), Settings(model=bundle_copy))


def test_changed_file_fails_its_checksum(bundle_copy: Path) -> None:
    with (bundle_copy / "tokenizer.json").open("a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match="tokenizer.json does not match the sha256 in config.json"):
        load_bundle(bundle_copy)
    load_bundle(bundle_copy, verify_checksums=False)


def test_missing_graph_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(bundle_copy)


def test_other_format_version_is_refused(bundle_copy: Path) -> None:
    _edit_config(bundle_copy, lambda cfg: cfg.update(format_version=99))
    with pytest.raises(BundleError, match="format 'attnserve-bundle' version 99; this attnserve reads "
                                          "'attnserve-bundle' version 1 only: export the bundle again"):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a model bundle .*attnserve export minilm"):
        load_bundle(tmp_path)


def test_cpu_host_picks_cpu_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # a host without a driver, also on a GPU host: the CUDA probe answers as it does where libcuda is missing
    import service.runtime

    monkeypatch.setattr(service.runtime, "_cuda_devices", lambda: (0, "no NVIDIA driver (libcuda.so.1 not found)"))
    providers, reason = choose_providers("auto")
    assert providers == ["CPUExecutionProvider"]
    assert reason in ("no NVIDIA driver (libcuda.so.1 not found)",
                      "this onnxruntime build has no CUDA execution provider")
    with pytest.raises(BundleError, match="CUDA was requested \\(ATTNSERVE_PROVIDER=cuda\\) but "):
        choose_providers("cuda")


def test_not_ready_until_loaded(tiny_bundle: Path) -> None:
    app = create_app(Settings(model=tiny_bundle))
    client = TestClient(app)  # no `with`: the lifespan has not run
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    with client:
        assert client.get("/readyz").status_code == 200
    assert app.state.ctx.ready is False  # shut down


def test_serve_with_a_missing_bundle_says_how_to_fix_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--model", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"attnserve serve: error: {tmp_path / 'nope'} is not a model bundle" in result.stderr


def test_serve_with_a_bad_setting(tmp_path: Path, tiny_bundle: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--model", str(tiny_bundle)],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"ATTNSERVE_MAX_BATCH_SIZE": "0", "PATH": ""})
    assert result.returncode == 2
    assert "setting max_batch_size (ATTNSERVE_MAX_BATCH_SIZE)" in result.stderr


def test_server_logs_one_provider_line_and_no_cuda_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_server(tiny_bundle, log):
        pass
    text = log.read_text()
    lines = [line for line in text.splitlines() if "execution provider" in line]
    assert len(lines) == 1 and choose_providers("auto")[0][0] in lines[0], text  # the host's provider
    assert "onnxruntime" not in text.lower().replace("attnserve", ""), text  # no ORT error spam
    assert "Traceback" not in text and " ERROR " not in text


NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed in the serving image")
sys.meta_path.insert(0, NoTorch())
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings
with TestClient(create_app(Settings(model=sys.argv[1]))) as client:
    r = client.post("/encode", json={"texts": ["no torch here"], "return_attentions": True})
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"][0]) == 64
assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
print("served without torch")
"""


def test_service_runs_without_torch(tiny_bundle: Path) -> None:
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(tiny_bundle)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "served without torch" in result.stdout


@pytest.mark.parametrize(("engine", "says"), [("onnxruntime", "the graph fails on token id 1000"),
                                              ("openvino", "the graph's embedding table has 1000 rows")])
def test_vocab_size_past_the_graphs_embedding_table_is_refused(bundle_copy: Path, engine: str, says: str) -> None:
    """ONNX Runtime fails on the missing row; OpenVINO would embed it as zeros, so its table's shape is read."""
    _edit_config(bundle_copy, lambda cfg: cfg["serving"].update(vocab_size=1001))  # the table has 1000 rows
    runtime = Runtime(load_bundle(bundle_copy), Settings(model=bundle_copy, engine=engine))
    with pytest.raises(BundleError, match=f"config.json says vocab_size 1001, but {says}"):
        runtime.check_vocabulary()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_vocab_size_that_fits_the_table_passes(tiny_bundle: Path, engine: str) -> None:
    Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, engine=engine)).check_vocabulary()


def test_another_format_is_refused(bundle_copy: Path) -> None:
    _edit_config(bundle_copy, lambda cfg: cfg.update(format="someone-elses-bundle"))
    with pytest.raises(BundleError, match="format 'someone-elses-bundle' version 1"):
        load_bundle(bundle_copy)


def test_serve_help_lists_every_setting_with_its_default() -> None:
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--help"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    for name, field in Settings.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        assert flag in result.stdout and f"[ATTNSERVE_{name.upper()}; default: " in result.stdout, name
        assert field.description.split(":")[0].replace("%", "") in result.stdout.replace("%%", "%"), name


def test_a_serve_flag_overrides_the_environment(tiny_bundle: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--model", str(tiny_bundle),
                             "--max-batch-size", "0"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ATTNSERVE_MAX_BATCH_SIZE": "8"})
    assert result.returncode == 2
    assert "setting max_batch_size (ATTNSERVE_MAX_BATCH_SIZE): Input should be greater than or equal to 1" \
        in result.stderr
