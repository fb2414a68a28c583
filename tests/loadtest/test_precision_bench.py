"""The precision axis runs end to end (the tiny bundle, a second of load per step): one line per variant, the
variant this CPU cannot run with the service's own refusal (numbers not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_precision_lines_are_written(tiny_bundle: Path, tmp_path: Path) -> None:
    from service.openvino_session import native_bf16
    from service.runtime import choose_providers

    run = subprocess.run([sys.executable, "-m", "loadtest.precision", "--model", str(tiny_bundle), "--seconds", "0.5",
                          "--concurrency", "1,4x8", "--output", str(tmp_path), "--port", "18815"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "precision.json").read_text())
    lines = {line["variant"]: line for line in result["variants"]}
    assert set(lines) == {"ort-fp32", "openvino-fp32", "openvino-bf16", "cuda-fp32", "cuda-fp16"}
    for name in ("ort-fp32", "openvino-fp32"):
        assert lines[name]["ceiling_sequences_per_s"] > 0 and lines[name]["service"]["4x8"]["errors"] == 0
        assert lines[name]["layout_ceiling_sequences_per_s"] > 0
        step = lines[name]["service"]["4x8"]  # 8 sentences in each request, counted as 8
        assert abs(step["sequences_per_s"] - 8 * step["requests_per_s"]) < 1e-6 * step["sequences_per_s"]
    assert lines["openvino-fp32"]["worst_cos"] > 0.99999  # fp32 on OpenVINO: ONNX Runtime's vectors
    if native_bf16()[0]:  # pragma: no cover - AMX machines
        assert lines["openvino-bf16"]["worst_cos"] >= 0.9999
    else:
        assert "needs a CPU that computes bf16 natively" in lines["openvino-bf16"]["refused"]
    if choose_providers("auto")[0][0] != "CUDAExecutionProvider":  # no GPU: the CUDA lines are refusals
        for name in ("cuda-fp32", "cuda-fp16"):
            assert "CUDA was requested (ATTNSERVE_PROVIDER=cuda) but" in lines[name]["refused"]
    md = (tmp_path / "precision.md").read_text()
    assert "| openvino-fp32 |" in md and "| (the reference) |" in md  # ort-fp32's row: the vectors compared to
    assert "c=4, 8/req seq/s" in md and "ceiling (seq/s): one call; service's layout" in md
    assert (tmp_path / "precision.png").read_bytes()[:4] == b"\x89PNG"


def test_the_plot_draws_each_measured_variant_and_names_the_refused(tmp_path: Path) -> None:
    """precision.png's bars are the measured figures, one per variant and step; a refused variant has none."""
    from loadtest.precision import plot

    def line(name: str, rates: list[float]) -> dict:
        service = {c: {"sequences_per_s": r, "p99_ms": 10.0 + r} for c, r in zip(("1", "16x8"), rates, strict=True)}
        return {"variant": name, "service": service, "ceiling_sequences_per_s": 300.0}

    result = {"concurrency": ["1", "16x8"], "variants": [
        line("ort-fp32", [150.0, 250.0]), {"variant": "openvino-bf16", "refused": "no bf16"},
        line("openvino-fp32", [140.0, 240.0])]}
    assert plot(tmp_path, result, "t") == {"ort-fp32": [150.0, 250.0], "openvino-fp32": [140.0, 240.0]}
    assert (tmp_path / "precision.png").read_bytes()[:4] == b"\x89PNG"


def test_steps_are_checked() -> None:
    from loadtest.precision import parse_steps

    assert parse_steps("1, 16,64,16x8") == ("1", "16", "64", "16x8")
    for bad in ("0", "16x", "x8", "16x0", "a"):
        with pytest.raises(ValueError, match="CLIENTS or CLIENTSxSENTENCES"):
            parse_steps(bad)


def test_unknown_variant_is_a_usage_error(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.precision", "--variants", "ort-fp32,tensorrt-int4",
                          "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--variants: unknown tensorrt-int4 (known: ort-fp32, " in run.stderr
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_an_unknown_precision_stops_the_benchmark_before_it_runs(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.bench", "--precisions", "cuda-fp16,int4",
                          "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--precisions: unknown int4 (known: ort-fp32, " in run.stderr
    assert not list(tmp_path.iterdir())
