"""The benchmark's judgement and its outputs: targets over the rounds, bench.md and bench.png; and the
stand-alone axes' (families, rerank, precision) own .json and .md."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.servers import machine


def chosen(parser: argparse.ArgumentParser, option: str, given: str, known: Iterable[str]) -> list[str]:
    """The comma-separated names of an axis option, each one checked against those the axis knows."""
    names, known = given.split(","), list(known)
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def write_axis(output: Path, name: str, title: str, detail: str, body: str, **fields: Any) -> dict[str, Any]:
    """<name>.json (the fields, stamped with the time and machine) and <name>.md (a heading, the machine, the
    detail line, the body), the .md printed: what each axis's own command leaves behind."""
    result = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), **fields}
    (output / f"{name}.json").write_text(json.dumps(result, indent=2))
    md = (f"# {title}, {result['when']}\n\n{result['machine']['cpu']}, {result['machine']['cores']} cores; "
          f"{detail}\n\n{body}\n")
    (output / f"{name}.md").write_text(md)
    print(md)
    return result


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def summarize(rounds: list[dict]) -> dict[str, float]:
    """Per-round ratios, then their medians: each ratio compares figures measured minutes apart at most."""
    out: dict[str, list[float]] = {"share": [], "p99": [], "ratio": [], "over_single": []}
    for r in rounds:
        b64, u64, b1 = r.get("batched_64"), r.get("unbatched_64"), r.get("batched_1")
        if b64:
            out["share"].append(b64["sequences_per_s"] / r["ceiling_sequences_per_s"])
            out["p99"].append(b64["p99_ms"])
        if b64 and u64:
            out["ratio"].append(b64["sequences_per_s"] / u64["sequences_per_s"])
        if b1:
            out["over_single"].append(b1["p50_ms"] - r["ceiling_single_p50_ms"])
    return {k: _median(v) for k, v in out.items() if v}


def write_report(out: Path, result: dict) -> str:
    ceil = result["ceiling"]
    lines = [
        f"# attnserve benchmark ({result['when']})", "",
        f"Bundle `{result['bundle']}`; machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"Python {result['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in result["machine"]["versions"].items()),
        f"Load: closed loop, one short corpus sentence per request, {result['seconds']:g} s per step; "
        "load generator (aiohttp on uvloop) on the same machine, sharing its cores.", "",
        "In-process ceiling (ONNX Runtime, one session on all cores, no HTTP, grouped by length; each of the "
        "bundle's graphs for batches): "
        + "; ".join(f"`{g}`: " + ", ".join(f"batch {k}: {v:.0f}" for k, v in by.items())
                    for g, by in ceil.get("by_graph", {ceil["graph"]: ceil["by_batch_size"]}).items())
        + f" sentences/s; best {ceil['sequences_per_s']:.0f} at batch {ceil['best_batch_size']} on `{ceil['graph']}`; "
        f"one sentence alone: {ceil['single_p50_ms']:.2f} ms (median).", "",
        *([f"The service's own layout, in process ({w['workers']} threads sharing one 1-thread session of "
           f"`{w.get('graph', ceil['graph'])}`, no HTTP): "
           + ", ".join(f"batch {k}: {v:.0f}" for k, v in w["by_batch_size"].items())
           + f" sentences/s; batching itself can add at most "
           f"{max(w['by_batch_size'].values()) / w['by_batch_size'][1]:.2f}x over batch 1 here.", ""]
          if (w := ceil.get("in_workers")) else []),
        "## Sweep", "",
        "| mode | clients | seq/s | tokens/s | p50 ms | p95 ms | p99 ms | mean batch | padding | % ceiling | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        lines.append(
            f"| {s['mode']} | {s['concurrency']} | {s['sequences_per_s']:.0f} | {s['tokens_per_s']:.0f} | "
            f"{s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_batch_size']:.1f} | "
            f"{s['padding_ratio']:.2f} | {100 * s['sequences_per_s'] / ceil['sequences_per_s']:.0f}% | {s['errors']} |"
        )
    cpu = any("cpu: event loop" in s["breakdown_ms"] for s in result["steps"])
    lines += ["", "Where a request's time goes (means per request from the service's metrics, ms)"
              + (" and where the CPU goes (CPU ms per request, from /proc: the server's event loop, its other "
                 "threads, the load generator)" if cpu else "") + ":", "",
              "| mode | clients | request | tokenize | queue | inference per batch | serialize |"
              + (" CPU loop | CPU inference | CPU load gen |" if cpu else ""),
              "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- |" if cpu else "")]
    for s in result["steps"]:
        b = s["breakdown_ms"]
        row = (f"| {s['mode']} | {s['concurrency']} | {b['request']:.2f} | {b['tokenize']:.2f} | "
               f"{b['queue']:.2f} | {b['inference (per batch)']:.2f} | {b['serialize']:.3f} |")
        if cpu:
            row += " | ".join(f" {b.get(k, float('nan')):.2f}" for k in (
                "cpu: event loop", "cpu: inference and other threads", "cpu: load generator")) + " |"
        lines.append(row)
    lines += ["", f"## Targets: {len(result['rounds'])} interleaved rounds", "",
              "Each round measures the ceiling at its best batch size and alone, then the service at 64 clients "
              "(batched and unbatched, both servers up) and at 1 client; ratios are taken within a round and the "
              "targets use their medians, because this shared machine's speed drifts between minutes.", "",
              "| round | ceiling seq/s | batched 64 seq/s | % ceiling | p99 ms | unbatched 64 seq/s "
              "| batched/unbatched | ceiling alone ms | 1 client p50 ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(result["rounds"], 1):
        b64, u64, b1 = r.get("batched_64"), r.get("unbatched_64"), r.get("batched_1")
        cells = [f"{r['ceiling_sequences_per_s']:.0f}",
                 f"{b64['sequences_per_s']:.0f}" if b64 else "-",
                 f"{100 * b64['sequences_per_s'] / r['ceiling_sequences_per_s']:.0f}%" if b64 else "-",
                 f"{b64['p99_ms']:.0f}" if b64 else "-",
                 f"{u64['sequences_per_s']:.0f}" if u64 else "-",
                 f"{b64['sequences_per_s'] / u64['sequences_per_s']:.2f}x" if b64 and u64 else "-",
                 f"{r['ceiling_single_p50_ms']:.2f}",
                 f"{b1['p50_ms']:.2f}" if b1 else "-"]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += ["", "Serving process: " + ", ".join(
        f"{mode}: ready after {v['ready_s']:.2f} s, peak RSS {v['peak_rss_mb']:.0f} MB"
        for mode, v in result["process"].items()), "", "Targets (medians over the rounds):", ""]
    lines += [f"- {'PASS' if ok else 'MISS'}: {text}" for text, ok in result["targets"]]
    table = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(table)
    return table


def targets(result: dict) -> list[tuple[str, bool]]:
    m = summarize(result["rounds"])
    out = []
    if "share" in m:
        out.append((f"batched at 64 clients: {100 * m['share']:.0f}% of the ceiling (>= 85%)", m["share"] >= 0.85))
        out.append((f"batched at 64 clients: p99 {m['p99']:.0f} ms (<= 400 ms)", m["p99"] <= 400))
    if "ratio" in m:
        out.append((f"batched / unbatched at 64 clients: {m['ratio']:.2f}x (>= 1.3x)", m["ratio"] >= 1.3))
    if "over_single" in m:
        out.append((f"1 client p50: {m['over_single']:+.2f} ms over the ceiling's one sentence alone (<= +3 ms)",
                    m["over_single"] <= 3))
    for mode, v in result["process"].items():
        out.append((f"{mode}: peak RSS {v['peak_rss_mb']:.0f} MB (<= 600 MB)", v["peak_rss_mb"] <= 600))
        out.append((f"{mode}: ready after {v['ready_s']:.2f} s (<= 5 s)", v["ready_s"] <= 5))
    return out


def plot(out: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("batched", "o-"), ("unbatched", "s--")):
        steps = [s for s in result["steps"] if s["mode"] == mode]
        if not steps:
            continue
        xs = [s["concurrency"] for s in steps]
        ax1.plot(xs, [s["sequences_per_s"] for s in steps], style, label=mode)
        ax2.plot(xs, [s["p99_ms"] for s in steps], style, label=mode)
    ax1.axhline(result["ceiling"]["sequences_per_s"], color="grey", linestyle=":",
                label=f"ceiling (ORT, batch {result['ceiling']['best_batch_size']})")
    if w := result["ceiling"].get("in_workers"):
        by = {int(k): v for k, v in w["by_batch_size"].items()}
        ax1.axhline(max(by.values()), color="grey", linestyle="-.", linewidth=0.8,
                    label=f"{w['workers']} x 1-thread sessions in process, best batch")
        ax1.axhline(by[1], color="grey", linestyle="--", linewidth=0.8,
                    label=f"{w['workers']} x 1-thread sessions in process, batch 1")
    for ax, title in ((ax1, "throughput (sentences/s)"), (ax2, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is ax1 else "upper left")
    ax1.set_ylim(bottom=0)
    ax2.set_yscale("log")
    fig.suptitle(f"attnserve, {result['bundle']}, {result['machine']['cores']} CPU cores")
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=110)
