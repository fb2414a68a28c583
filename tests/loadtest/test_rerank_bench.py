"""The rerank benchmark line runs end to end (a tiny cross-encoder, a second of load) and writes its line
(numbers not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rerank_line_is_written(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.rerank", "--tiny", "--seconds", "0.5", "--output",
                          str(tmp_path), "--port", "18805"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    line = json.loads((tmp_path / "rerank.json").read_text())["rerank"]
    assert line["ceiling_pairs_per_s"] > 0 and line["service_64"]["requests"] > 0
    assert line["service_64"]["errors"] == 0
    assert "| tiny | 8 |" in (tmp_path / "rerank.md").read_text()
