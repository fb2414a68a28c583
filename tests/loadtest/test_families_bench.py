"""The per-family benchmark runs end to end (a tiny shape, one family, a second of load) and writes its lines
(numbers not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_family_lines_are_written(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.families", "--tiny", "--families", "modernbert", "--seconds", "0.5",
         "--output", str(tmp_path), "--port", "18795"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = json.loads((tmp_path / "families.json").read_text())["families"]
    assert line["family"] == "modernbert" and line["ceiling_sequences_per_s"] > 0
    assert line["service_64"]["requests"] > 0 and line["service_64"]["errors"] == 0
    assert "| modernbert |" in (tmp_path / "families.md").read_text()


def test_unknown_family_is_a_usage_error(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.families", "--families", "gpt2", "--output", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--families: unknown gpt2 (known: " in run.stderr
