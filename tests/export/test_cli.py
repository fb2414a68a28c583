"""`attnserve export`: the commands as a user runs them, bad arguments included (one line, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def attnserve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attnserve", *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_export_tiny_writes_a_bundle(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    result = attnserve("export", "tiny", "--output", str(out), "--seed", "3", "--no-optimize")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} (tiny" in result.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["version"] == "3" and "optimized" not in cfg["graphs"]
    assert not (out / "model_optimized.onnx").exists()


def test_export_hf_folder(tmp_path: Path) -> None:
    """A plain transformers checkpoint (no sentence-transformers files), made by transformers itself with small
    random weights: the export serves the model's full length with mean pooling and no normalization, and the
    written graph equals transformers' own forward pass."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from tests.families import FAMILIES, make_checkpoint

    src = tmp_path / "ckpt"
    reference = make_checkpoint("bert", src)
    result = attnserve("export", "hf", str(src), "--output", str(tmp_path / "out"), "--no-optimize")
    assert result.returncode == 0, result.stderr
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    serving = cfg["serving"]
    assert (serving["max_length"], serving["pooling"], serving["normalize"]) == (FAMILIES["bert"].max_length, "mean",
                                                                                  False)
    # the written graph against transformers itself (the export's own parity check compares with our PyTorch)
    ids = np.array([[2, 17, 40, 99, 3], [2, 57, 3, 0, 0]], dtype=np.int64)
    mask = (np.arange(5) < np.array([[5], [3]])).astype(np.int64)
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    with torch.no_grad():
        want = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    for row, n in enumerate((5, 3)):  # padded positions are never served
        np.testing.assert_allclose(hidden[row, :n], want.numpy()[row, :n], atol=1e-4)


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("attnserve export: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_folder(tmp_path: Path) -> None:
    line = _error_line(attnserve("export", "hf", str(tmp_path / "nope"), "--output", str(tmp_path / "o")))
    assert line.endswith("nope is not a folder")


def test_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    line = _error_line(attnserve("export", "hf", str(tmp_path / "ckpt"), "--output", str(tmp_path / "o")))
    assert "is not a Hugging Face checkpoint: missing config.json, model.safetensors" in line


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = _error_line(attnserve("export", "tiny", "--output", str(blocker / "bundle")))
    assert f"cannot write to {blocker / 'bundle'}" in line


@pytest.mark.parametrize("args", [["export"], ["export", "tiny"], ["export", "onnx", "--output", "x"]])
def test_usage_errors(args: list[str]) -> None:
    result = attnserve(*args)
    assert result.returncode == 2
    assert "usage: attnserve export" in result.stderr and "Traceback" not in result.stderr
