"""The benchmark runs end to end on a small bundle and writes what the README shows (numbers not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadtest.report import summarize

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_table_json_and_plot(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--model", str(tiny_bundle), "--output", str(out), "--seconds", "0.5",
         "--concurrency", "1,4", "--rounds", "1", "--port", "18765"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out / "bench.json").read_text())
    assert [(s["mode"], s["concurrency"]) for s in result["steps"]] == [
        ("batched", 1), ("batched", 4), ("unbatched", 1), ("unbatched", 4)]
    assert all(s["errors"] == 0 and s["requests"] > 0 for s in result["steps"])
    assert all(s["breakdown_ms"]["cpu: event loop"] > 0 for s in result["steps"])  # /proc was read
    assert max(s["mean_batch_size"] for s in result["steps"] if s["mode"] == "unbatched") == 1.0
    assert set(result["ceiling"]["in_workers"]["by_batch_size"]) == {"1", "8", "16"}
    assert "batching itself can add at most" in (out / "bench.md").read_text()
    (r,) = result["rounds"]
    assert {"batched_64", "unbatched_64", "batched_1"} <= r.keys()
    assert len(result["targets"]) == 8
    md = (out / "bench.md").read_text()
    assert "## Targets: 1 interleaved rounds" in md and "| unbatched | 4 |" in md
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_targets_use_per_round_ratios_and_their_medians() -> None:
    def s(rate: float, p99: float = 300.0, p50: float = 5.0) -> dict:
        return {"sequences_per_s": rate, "p99_ms": p99, "p50_ms": p50}

    rounds = [
        {"ceiling_sequences_per_s": 300, "ceiling_single_p50_ms": 4, "batched_64": s(270, 350), "unbatched_64": s(200),
         "batched_1": s(1, p50=6)},
        {"ceiling_sequences_per_s": 200, "ceiling_single_p50_ms": 6, "batched_64": s(190, 500), "unbatched_64": s(100),
         "batched_1": s(1, p50=10)},
        {"ceiling_sequences_per_s": 250, "ceiling_single_p50_ms": 5, "batched_64": s(200, 380), "unbatched_64": s(160),
         "batched_1": s(1, p50=7)},
    ]
    m = summarize(rounds)
    assert m["share"] == pytest.approx(np.median([270 / 300, 190 / 200, 200 / 250]))
    assert m["ratio"] == pytest.approx(1.35)  # 1.35, 1.9, 1.25
    assert m["p99"] == 380
    assert m["over_single"] == 2  # 2, 4, 2
