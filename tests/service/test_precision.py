"""Precision and engine: the start-up rules (one clear error each), OpenVINO as a second engine with ONNX
Runtime's numbers, and the fidelity measurement a reduced precision must pass. bf16 itself runs only where
the CPU computes it natively: the test that needs it is chosen by what OpenVINO reports of this CPU, and a
machine without it tests the refusal instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from bundle import BundleError, load_bundle
from service.app import create_app
from service.openvino_session import native_bf16
from service.precision import check_fidelity, choose_engine, fidelity, measure_against_fp32, recorded_fidelity
from service.runtime import Runtime, choose_providers, fidelity_sequences
from service.settings import Settings

from .conftest import client_for, running_server

NATIVE_BF16, WHY = native_bf16()
(CUDA_FIRST, *_), CUDA_WHY = choose_providers("auto")
ON_CUDA = CUDA_FIRST == "CUDAExecutionProvider"
# bf16 keeps 8 bits of mantissa (relative error 2^-9 per rounding): attention probabilities of MiniLM's
# 6 layers moved by 0.011 at most against fp32 on the AMX machine (docs/performance.md): bounded at 0.02
ATTENTION_BOUND = 0.02


def _start(bundle: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(model=bundle, **settings)))


def _edited(bundle: Path, to: Path, edit: Callable[[dict], object]) -> Path:
    """A copy of ``bundle`` at ``to`` (or the bundle itself) whose config.json ``edit`` has changed in place."""
    if to != bundle:
        shutil.copytree(bundle, to)
    config = json.loads((to / "config.json").read_text())
    edit(config)
    (to / "config.json").write_text(json.dumps(config))
    return to


CLASSIFY = {"kind": "classify", "labels": ["a", "b"], "activation": "softmax"}


def test_int8_is_refused_with_the_measured_reason(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="int8 is not offered: plain int8 of MiniLM measured a worst cosine"), \
            _start(tiny_bundle, precision="int8"):
        pass


def test_bf16_on_onnxruntime_is_refused(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="bf16 runs on OpenVINO .*set ATTNSERVE_ENGINE=openvino or auto"), \
            _start(tiny_bundle, precision="bf16", engine="onnxruntime"):
        pass


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU computes bf16: test_bf16_where_the_cpu_computes_it runs instead")
def test_bf16_without_native_support_is_refused_at_start(tiny_bundle: Path) -> None:
    """The documented rule: no silent fallback to f32 under a bf16 label."""
    with pytest.raises(BundleError, match="bf16 needs a CPU that computes bf16 natively .*Serve fp32"), \
            _start(tiny_bundle, precision="bf16"):
        pass


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU computes bf16: test_bf16_through_the_real_server runs instead")
def test_the_real_server_refuses_bf16_in_one_line(tiny_bundle: Path) -> None:
    """`attnserve serve` itself: exit status 1 and one error line naming the rule, no traceback."""
    env = {**os.environ, "ATTNSERVE_PRECISION": "bf16"}
    result = subprocess.run([sys.executable, "-m", "attnserve", "serve", "--model", str(tiny_bundle), "--port", "0"],
                            capture_output=True, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("attnserve serve: error: ATTNSERVE_PRECISION=bf16 needs a CPU "
                                                     "that computes bf16 natively"), result.stderr


@pytest.mark.skipif(not NATIVE_BF16, reason=f"no native bf16 here ({WHY}): the refusal tests run instead")
def test_bf16_through_the_real_server(minilm_bundle: Path, tmp_path: Path) -> None:  # pragma: no cover - AMX
    """Two real `attnserve serve` processes on 127.0.0.1, fp32 and bf16, on the same bundle: bf16's vectors
    within the bar of fp32's on sentences the start-up check never saw, its attentions within the bound, and
    /v1/models and the metrics name the engine and precision."""
    texts = ["Attention is all you need.", "Die Katze schläft auf dem Sofa.", "a longer sentence " * 30, "?"]
    with running_server(minilm_bundle, tmp_path / "fp32.log") as fp32, \
            running_server(minilm_bundle, tmp_path / "bf16.log", precision="bf16") as bf16:
        model = httpx.get(f"{bf16.url}/v1/models", timeout=10).json()["data"][0]
        assert (model["engine"], model["precision"]) == ("openvino", "bf16")
        assert 'precision="bf16"' in httpx.get(f"{bf16.url}/metrics", timeout=10).text
        body = {"texts": texts, "truncate": True}
        want = np.array(httpx.post(f"{fp32.url}/encode", json=body, timeout=60).json()["embeddings"])
        got = np.array(httpx.post(f"{bf16.url}/encode", json=body, timeout=60).json()["embeddings"])
        assert (want * got).sum(axis=1).min() >= 0.9999  # normalized vectors
        asked = {"texts": texts[:2], "return_attentions": True}
        want_att = httpx.post(f"{fp32.url}/encode", json=asked, timeout=60).json()["attentions"]
        got_att = httpx.post(f"{bf16.url}/encode", json=asked, timeout=60).json()["attentions"]
        for w, g in zip(want_att, got_att, strict=True):
            assert np.abs(np.asarray(w) - np.asarray(g)).max() <= ATTENTION_BOUND


@pytest.mark.skipif(not NATIVE_BF16, reason=f"no native bf16 here ({WHY}): the refusal test runs instead")
def test_bf16_where_the_cpu_computes_it(minilm_bundle: Path) -> None:  # pragma: no cover - AMX machines
    texts = ["The quick brown fox jumps over the lazy dog.", "Zürich in winter", "x"]
    with client_for(minilm_bundle) as fp32, client_for(minilm_bundle, precision="bf16") as bf16:
        model = bf16.get("/v1/models").json()["data"][0]
        assert (model["engine"], model["precision"]) == ("openvino", "bf16")
        assert model["fidelity"]["worst_cos"] >= 0.9999
        want = np.array(fp32.post("/encode", json={"texts": texts}).json()["embeddings"])
        got = np.array(bf16.post("/encode", json={"texts": texts}).json()["embeddings"])
        cosines = (want * got).sum(axis=1)  # normalized vectors
        assert cosines.min() >= 0.9999
        asked = {"texts": texts[:1], "return_attentions": True}
        want_att = np.array(fp32.post("/encode", json=asked).json()["attentions"][0])
        got_att = np.array(bf16.post("/encode", json=asked).json()["attentions"][0])
        error = float(np.abs(want_att - got_att).max())
        print(f"bf16 attention error on the real server: {error:.5f}; at start: {model['fidelity']}")
        assert error <= ATTENTION_BOUND and model["fidelity"]["max_attention_error"] <= ATTENTION_BOUND
    with pytest.raises(BundleError, match="below the bar 1.0"), client_for(minilm_bundle, precision="bf16",
                                                                           min_fidelity_cos=1.0):
        pass


@pytest.mark.skipif(not ON_CUDA, reason=f"no CUDA here ({CUDA_WHY}): test_fp16_rules tests the refusal instead")
def test_fp16_where_cuda_runs_it(minilm_bundle: Path) -> None:  # pragma: no cover - GPU hosts
    """The bundle's fp16 graph on ONNX Runtime's CUDA provider through the real app: vectors within the bar of
    the CPU's fp32 ones; attention requests run the fp32 attentions graph on the GPU, so they stay close."""
    texts = ["The quick brown fox jumps over the lazy dog.", "Zürich in winter", "x", "a longer sentence " * 20]
    with client_for(minilm_bundle, provider="cpu") as fp32, \
            client_for(minilm_bundle, precision="fp16", provider="cuda") as fp16:
        model = fp16.get("/v1/models").json()["data"][0]
        assert (model["engine"], model["precision"]) == ("onnxruntime", "fp16")
        assert model["execution_provider"] == "CUDAExecutionProvider"
        assert model["fidelity"]["worst_cos"] >= 0.9999 and model["fidelity"]["device"].startswith("CUDA: ")
        want = np.array(fp32.post("/encode", json={"texts": texts}).json()["embeddings"])
        got = np.array(fp16.post("/encode", json={"texts": texts}).json()["embeddings"])
        assert (want * got).sum(axis=1).min() >= 0.9999  # normalized vectors
        asked = {"texts": texts[:1], "return_attentions": True}
        want_att = np.array(fp32.post("/encode", json=asked).json()["attentions"][0])
        got_att = np.array(fp16.post("/encode", json=asked).json()["attentions"][0])
        print(f"fp16 on CUDA: {model['fidelity']}; attention difference {np.abs(want_att - got_att).max():.2e}")
        assert np.abs(want_att - got_att).max() <= 1e-3


def test_the_rules_with_a_cpu_that_has_bf16(tiny_bundle: Path, tmp_path: Path) -> None:
    """The rules past the CPU check, with the CPU's answer given: bf16 goes to OpenVINO; CUDA and task bundles
    are refused by name."""
    bundle = load_bundle(tiny_bundle)
    yes = lambda: (True, "BF16 listed")  # noqa: E731
    choice = choose_engine(Settings(model=tiny_bundle, precision="bf16"), bundle, False, yes)
    assert (choice.precision, choice.engine) == ("bf16", "openvino")
    with pytest.raises(BundleError, match="bf16 is a CPU setting .*on CUDA use ATTNSERVE_PRECISION=fp16"):
        choose_engine(Settings(model=tiny_bundle, precision="bf16"), bundle, True, yes)
    task = _edited(tiny_bundle, tmp_path / "task", lambda config: config.update(task=CLASSIFY))
    with pytest.raises(BundleError, match="measured for embedding models only"):
        choose_engine(Settings(model=task, precision="bf16"), load_bundle(task, False), False, yes)
    fp32 = choose_engine(Settings(model=tiny_bundle), bundle, False, yes)
    assert (fp32.precision, fp32.engine) == ("fp32", "onnxruntime")  # ONNX Runtime stays the default


def test_fidelity_below_the_bar_is_refused() -> None:
    rng = np.random.default_rng(0)
    want = [rng.normal(size=16) for _ in range(5)]
    close = [w + 1e-4 * rng.normal(size=16) for w in want]
    far = [*close[:4], -want[4]]  # one vector turned around
    figures = fidelity(want, close)
    assert 0.9999 < figures["worst_cos"] <= figures["median_cos"] <= 1.0
    check_fidelity("bf16", figures, 0.9999)
    bad = fidelity(want, far)
    assert bad["worst_cos"] == pytest.approx(-1.0)
    with pytest.raises(BundleError, match="worst cosine against fp32 over 5 sentences is -1.000000, below the bar"):
        check_fidelity("bf16", bad, 0.9999)


def test_the_fidelity_measurement_on_openvino(tiny_bundle: Path) -> None:
    """The measurement a bf16 start runs, here on an fp32 OpenVINO runtime: against OpenVINO f32 it must find
    the same numbers (cosine 1, attention error ~0), and the sequences are the fidelity sentences. Batches on the
    workers' sessions count as much as a batch alone."""
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, engine="openvino", warmup=False))
    sequences = fidelity_sequences(runtime.bundle)
    assert len(sequences) == 12 and len({len(s) for s in sequences}) > 5
    figures = measure_against_fp32(runtime, sequences, 1)
    assert figures["worst_cos"] > 1 - 1e-6 and figures["max_attention_error"] < 1e-5
    # the workers' batches (the packed graph's session) are measured too, not only a batch run alone
    assert runtime.packed_session is not None
    run = runtime.packed_session.run
    runtime.packed_session.run = lambda names, feeds: [-h for h in run(names, feeds)]  # type: ignore[method-assign]
    assert measure_against_fp32(runtime, sequences, 1)["worst_cos"] < 0


@pytest.mark.parametrize("bundle_name", ["tiny_bundle", "minilm_bundle"])
def test_openvino_gives_onnxruntimes_numbers(bundle_name: str, request: pytest.FixtureRequest) -> None:
    """The second engine through the whole service: vectors, token vectors and attentions as ONNX Runtime's,
    for batches of mixed lengths; /v1/models and the metrics say which engine and precision run."""
    bundle = request.getfixturevalue(bundle_name)
    texts = ["The quick brown fox jumps over the lazy dog.", "x", "Zürich, naïve café " * 12, ""]
    body = {"texts": texts, "truncate": True, "return_token_embeddings": True, "return_attentions": True,
            "attention_layers": [0, -1]}
    with client_for(bundle) as ort_client, client_for(bundle, engine="openvino") as ov_client:
        model = ov_client.get("/v1/models").json()["data"][0]
        assert (model["engine"], model["precision"], model["execution_provider"]) == ("openvino", "fp32",
                                                                                    "OpenVINO CPU")
        assert 'model_info{engine="openvino",model="' in ov_client.get("/metrics").text
        want, got = ort_client.post("/encode", json=body).json(), ov_client.post("/encode", json=body).json()
    assert got["tokens"] == want["tokens"]
    for key in ("embeddings", "token_embeddings", "attentions"):
        for w, g in zip(want[key], got[key], strict=True):
            assert np.abs(np.asarray(w) - np.asarray(g)).max() <= 1e-4, key


def test_openvino_refuses_onnxruntimes_own_graph(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="optimized is ONNX Runtime's own graph"), \
            _start(tiny_bundle, engine="openvino", graph="optimized"):
        pass


@pytest.mark.parametrize("step", [1, 8])
def test_openvino_length_step_pads_widths_and_keeps_numbers(tiny_bundle: Path, step: int) -> None:
    """ATTNSERVE_OPENVINO_LENGTH_STEP rounds each padded batch's width up to a multiple of the step (fewer
    shapes); the extra padding is masked, so the vectors are those of the unpadded run."""
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, engine="openvino", warmup=False,
                                                         openvino_length_step=step, graph="default"))
    session, widths = runtime.sessions[False], []
    run = session.run
    session.run = lambda names, feeds: widths.append(feeds["input_ids"].shape[1]) or run(names, feeds)
    sequences = [np.array([101, 7, 8, 9, 102]), np.array([101, 7, 102])]
    got = runtime.run(sequences, False)
    assert widths == [5 if step == 1 else 8]
    reference = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, warmup=False))
    for w, g in zip(reference.run(sequences, False), got, strict=True):
        assert np.abs(w.pooled - g.pooled).max() <= 1e-5


def test_openvino_runs_one_sequence_packed_and_compiles_the_padded_graph_once(
        tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With packed batches and a session for batches alone (2 cores), OpenVINO compiles the padded graph once, for
    that session: a worker's single sequence runs on the packed graph, as fast there (docs/performance.md), with
    ONNX Runtime's vectors."""
    from service.openvino_session import OpenVinoSession

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    compiled: list[str] = []
    init = OpenVinoSession.__init__
    monkeypatch.setattr(OpenVinoSession, "__init__",
                        lambda self, core, model, name, *a, **k: compiled.append(name) or init(self, core, model, name,
                                                                                               *a, **k))
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, engine="openvino", warmup=False))
    assert sorted(compiled) == ["attentions", "default", "packed"]
    assert runtime.sessions[False] is runtime.lone_session
    ran: list[str] = []
    for name, session in (("packed", runtime.packed_session), ("padded", runtime.lone_session)):
        monkeypatch.setattr(session, "run", lambda names, feeds, run=session.run, name=name: ran.append(name)
                            or run(names, feeds))
    sequence = np.array([101, 7, 8, 9, 102])
    got = runtime.run([sequence], False)[0].pooled
    alone = runtime.run([sequence], False, alone=True)[0].pooled
    assert ran == ["packed", "padded"]
    want = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, warmup=False)).run([sequence], False)[0]
    assert np.abs(got - want.pooled).max() <= 1e-5 and np.abs(alone - want.pooled).max() <= 1e-5


@pytest.mark.parametrize("buckets", [True, False])
def test_openvino_packs_batches_into_bucketed_shapes(tiny_bundle: Path, buckets: bool) -> None:
    """OpenVINO's packed batches are rounded up to bucketed shapes (ATTNSERVE_OPENVINO_PACKED_BUCKETS), exact
    where turned off; the vectors are ONNX Runtime's (exact shapes) either way."""
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, engine="openvino", warmup=False,
                                                         openvino_packed_buckets=buckets))
    assert runtime.packed_session is not None
    shapes: list[tuple] = []
    run = runtime.packed_session.run
    runtime.packed_session.run = lambda names, feeds: shapes.append(  # type: ignore[method-assign]
        (feeds["slots"].shape, len(feeds["input_ids"]))) or run(names, feeds)
    sequences = [np.array([101] + [7] * n + [102]) for n in (3, 11, 0, 20)]
    got = runtime.run(sequences, False)
    assert shapes == ([((4, 24), 64)] if buckets else [((4, 22), 42)])
    want = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, warmup=False)).run(sequences, False)
    for w, g in zip(want, got, strict=True):
        assert g.hidden.shape == w.hidden.shape
        assert np.abs(w.pooled - g.pooled).max() <= 1e-5 and np.abs(w.hidden - g.hidden).max() <= 1e-4


def _kernels(session: object) -> set[str]:
    """The layer types OpenVINO compiled a session's graph into."""
    runtime_model = session.compiled.get_runtime_model()  # type: ignore[attr-defined]
    return {op.get_rt_info()["layerType"].astype(str) for op in runtime_model.get_ops()}


@pytest.mark.parametrize(("precision", "batch_attention"),
                         [("fp32", "unfused"), ("fp32", None), *([("bf16", "unfused")] if NATIVE_BF16 else [])])
def test_openvino_batch_sessions_compile_attention_as_set(minilm_bundle: Path, precision: str,
                                                          batch_attention: str | None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch workers' session runs OpenVINO's fused attention subgraph by default (its memory levels off), or
    separate MatMul and Softmax kernels where ATTNSERVE_OPENVINO_BATCH_ATTENTION=unfused (faster for batches on AMX,
    docs/performance.md); the all-cores session of lone batches keeps the subgraph (faster for one sequence).
    Every way gives ONNX Runtime's numbers in fp32."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    chosen = {"openvino_batch_attention": batch_attention} if batch_attention else {}  # None: the default
    runtime = Runtime(load_bundle(minilm_bundle), Settings(model=minilm_bundle, engine="openvino", precision=precision,
                                                           warmup=False, **chosen))
    assert runtime.packed_session is not None and runtime.lone_session is not None
    unfused = {"Softmax", "MatMul"} <= _kernels(runtime.packed_session)
    assert unfused == (batch_attention == "unfused") and ("Subgraph" in _kernels(runtime.packed_session)) != unfused
    assert "Softmax" not in _kernels(runtime.lone_session) and "Subgraph" in _kernels(runtime.lone_session)
    if precision == "fp32":
        sequences = [np.array([101, 7, 8, 9, 102]), np.array([101, 2023, 102]), np.array([101] + [42] * 30 + [102])]
        reference = Runtime(load_bundle(minilm_bundle), Settings(model=minilm_bundle, warmup=False))
        want = reference.run(sequences, False, alone=True)
        for got in (runtime.run(sequences, False), runtime.run(sequences, False, alone=True)):
            for w, g in zip(want, got, strict=True):
                assert np.abs(w.pooled - g.pooled).max() <= 1e-5


def test_openvino_reads_each_graph_once(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One read of the attentions graph serves every padded OpenVINO session (single sequences, lone batches,
    the fidelity check's f32 ones), its default graph being the attentions graph less that output: the same
    numbers as OpenVINO's compile of the bundle's default graph file; the packed graph (the batches') is read
    once. A bundle whose default graph runs queries in blocks reads that file too."""
    import openvino

    reads: list[str] = []
    read = openvino.Core.read_model
    monkeypatch.setattr(openvino.Core, "read_model", lambda core, path, *a: reads.append(Path(path).name)
                        or read(core, path, *a))
    layout = {"engine": "openvino", "warmup": False, "inference_workers": 2, "intra_op_threads": 1}
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, **layout))
    measure_against_fp32(runtime, fidelity_sequences(runtime.bundle)[:4], 1)
    assert sorted(reads) == ["model_attentions.onnx", "model_packed.onnx"]
    direct = openvino.Core().compile_model(str(tiny_bundle / "model.onnx"), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
    ids = np.array([[101, 7, 8, 9, 102], [101, 7, 102, 0, 0]])
    want = direct.create_infer_request().infer({"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})
    got = runtime.sessions[False].run(None, {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})
    assert [o.get_any_name() for o in direct.outputs] == [o.name for o in runtime.sessions[False].get_outputs()]
    for w, g in zip(want.values(), got, strict=True):
        assert np.abs(w - g).max() <= 1e-6
    chunked = _edited(tiny_bundle, tmp_path / "chunked",
                      lambda config: config["graphs"]["default"].update(query_chunks=2))
    reads.clear()
    Runtime(load_bundle(chunked, False), Settings(model=chunked, **layout))
    assert sorted(reads) == ["model.onnx", "model_attentions.onnx", "model_packed.onnx"]


def test_fidelity_is_recorded_in_the_bundle_and_read_back(tiny_bundle: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first start of a precision measures it and writes fidelity.json; later starts on the same CPU,
    engine version and graph read the record instead of measuring; another CPU measures anew; a recorded
    figure below the bar is refused like a measured one; a read-only bundle is measured at every start."""
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    # on a CPU with bf16, the bf16 tests' starts have already recorded their own figures in the shared bundle
    (bundle / "fidelity.json").unlink(missing_ok=True)
    runtime = Runtime(load_bundle(bundle), Settings(model=bundle, engine="openvino", warmup=False))
    sequences = fidelity_sequences(runtime.bundle)
    first = recorded_fidelity(runtime, sequences, 1)
    assert first["source"] == "measured at this start, recorded in fidelity.json"
    records = json.loads((bundle / "fidelity.json").read_text())["records"]
    assert len(records) == 1 and records[0]["worst_cos"] == first["worst_cos"] > 1 - 1e-6
    assert (records[0]["precision"], records[0]["engine"]) == ("fp32", "openvino")
    # the file the served vectors come from: OpenVINO's default graph is read from the attentions graph
    assert records[0]["graph_sha256"] == load_bundle(bundle).config["files"]["model_attentions.onnx"]
    assert records[0]["batch_graph_sha256"] == load_bundle(bundle).config["files"]["model_packed.onnx"]
    assert records[0]["batch_attention"] == "fused"  # how the batches are compiled changes the numbers too
    monkeypatch.setattr("service.precision.measure_against_fp32", lambda *_: pytest.fail("measured again"))
    again = recorded_fidelity(runtime, sequences, 1)
    assert again["source"].startswith("recorded in fidelity.json (measured 20")
    assert again["worst_cos"] == first["worst_cos"]
    unfused = Runtime(load_bundle(bundle), Settings(model=bundle, engine="openvino", warmup=False,
                                                    openvino_batch_attention="unfused"))
    with pytest.raises(pytest.fail.Exception, match="measured again"):  # another compile of the batches: its own
        recorded_fidelity(unfused, sequences, 1)

    poor = {"worst_cos": 0.5, "median_cos": 0.6, "max_abs_diff": 1.0, "sequences": 12, "max_attention_error": 0.1}
    monkeypatch.setattr("service.precision.cpu_description", lambda: "another CPU (amx_bf16)")
    monkeypatch.setattr("service.precision.measure_against_fp32", lambda *_: poor)
    assert recorded_fidelity(runtime, sequences, 1)["source"].startswith("measured at this start")
    assert len(json.loads((bundle / "fidelity.json").read_text())["records"]) == 2
    monkeypatch.setattr("service.precision.measure_against_fp32", lambda *_: pytest.fail("measured again"))
    with pytest.raises(BundleError, match="worst cosine against fp32 over 12 sentences is 0.500000, below the bar"):
        check_fidelity("bf16", recorded_fidelity(runtime, sequences, 1), 0.9999)

    def read_only(*_: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("service.precision.cpu_description", lambda: "a third CPU")
    monkeypatch.setattr("service.precision.measure_against_fp32", lambda *_: poor)
    monkeypatch.setattr("service.precision.add_record", read_only)
    figures = recorded_fidelity(runtime, sequences, 1)
    assert figures["source"] == "measured at this start (the bundle folder is read-only: measured at every start)"
    assert len(json.loads((bundle / "fidelity.json").read_text())["records"]) == 2


def test_fp16_rules(tiny_bundle: Path, tmp_path: Path) -> None:
    """fp16 is the bundle's fp16 graph on CUDA: chosen there for embedding bundles that have it; refused, with
    one line naming why, on a CPU, with OpenVINO, for a task bundle and for a bundle exported without it."""
    bundle = load_bundle(tiny_bundle)
    no = lambda: (False, "not asked")  # noqa: E731
    choice = choose_engine(Settings(model=tiny_bundle, precision="fp16"), bundle, True, no)
    assert (choice.precision, choice.engine) == ("fp16", "onnxruntime")
    with pytest.raises(BundleError, match="fp16 runs the bundle's fp16 graph on CUDA, and this host runs on the CPU"):
        choose_engine(Settings(model=tiny_bundle, precision="fp16"), bundle, False, no)
    with pytest.raises(BundleError, match="OpenVINO's reduced precision is bf16"):
        choose_engine(Settings(model=tiny_bundle, precision="fp16", engine="openvino"), bundle, True, no)
    old = _edited(tiny_bundle, tmp_path / "old",
                  lambda config: (config["graphs"].pop("fp16"), config["files"].pop("model_fp16.onnx")))
    with pytest.raises(BundleError, match="needs the bundle's fp16 graph and tiny has none: export it again"):
        choose_engine(Settings(model=old, precision="fp16"), load_bundle(old), True, no)
    _edited(old, old, lambda config: config.update(task=CLASSIFY))
    with pytest.raises(BundleError, match="fp16 is built for embedding models only"):
        choose_engine(Settings(model=old, precision="fp16"), load_bundle(old, False), True, no)
    # through the service: one start-up error on a CPU host; on a CUDA host it starts on the fp16 graph
    if ON_CUDA:  # pragma: no cover - GPU hosts
        with _start(tiny_bundle, precision="fp16") as client:
            assert client.get("/v1/models").json()["data"][0]["precision"] == "fp16"
        return
    with pytest.raises(BundleError, match="this host runs on the CPU"), _start(tiny_bundle, precision="fp16"):
        pass


def test_the_fidelity_measurement_of_the_fp16_graph(tiny_bundle: Path) -> None:
    """What an fp16 start on CUDA measures, run here on the CPU provider: the fp16 graph's vectors against the
    bundle's fp32 graph on the same provider (close, not equal), attentions from the fp32 graph (equal)."""
    runtime = Runtime(load_bundle(tiny_bundle), Settings(model=tiny_bundle, warmup=False))
    half = runtime._session("fp16", ort.SessionOptions(), ["CPUExecutionProvider"])
    runtime.sessions = {**runtime.sessions, False: half}
    runtime.packed_session = runtime.lone_session = None
    runtime.choice = replace(runtime.choice, precision="fp16")
    figures = measure_against_fp32(runtime, fidelity_sequences(runtime.bundle), 1)
    assert 0.9999 <= figures["worst_cos"] < 1 - 1e-9 and figures["max_attention_error"] == 0.0


def test_a_records_device_is_the_gpu_for_fp16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp16's figures depend on the GPU, bf16's on the CPU: the record's key says which computed them."""
    from service import precision

    assert precision.device_description("bf16") == precision.cpu_description()
    gpus = tmp_path / "gpus"
    for bus, model in (("0000:01:00.0", "NVIDIA H200"), ("0000:02:00.0", "NVIDIA H100 80GB HBM3")):
        (gpus / bus).mkdir(parents=True)
        (gpus / bus / "information").write_text(f"Model: \t\t {model}\nIRQ:\t\t 42\n")
    real = Path
    monkeypatch.setattr(precision, "Path", lambda p: gpus if p == "/proc/driver/nvidia/gpus" else real(p))
    assert precision.device_description("fp16") == "CUDA: NVIDIA H100 80GB HBM3, NVIDIA H200"
    gpus.rename(tmp_path / "none")
    assert precision.device_description("fp16") == "CUDA: device not named by the driver"


def test_no_openvino_means_no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without the openvino package (the GPU image) has no bf16, and says what to install, instead of the
    check raising where it is only asked (this module's own NATIVE_BF16 failed to import there)."""
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    assert native_bf16() == (False, "ATTNSERVE_ENGINE=openvino (or ATTNSERVE_PRECISION=bf16) needs the openvino "
                                    "package: pip install 'attnserve[openvino]'")
