"""The benchmark's precision axis: each (engine, precision) variant in one run, its in-process ceilings (the
service's own runtime, batches of 32 sentences grouped by length: one call on every core, and the plan's own
workers and threads), the service at
several client counts (one sentence per request), and the worst cosine of its vectors on the whole corpus
against ONNX Runtime fp32 (itself equal to sentence-transformers within 1e-5: tests/models). A variant the
machine refuses (bf16 without native support) gets a line with the service's own start-up error. The CPU's
model and its relevant flags go with every figure.

    python -m loadtest.precision --model build/minilm --output results/precision
    python -m loadtest.bench --precisions ort-fp32,openvino-fp32,openvino-bf16 ...   # inside the benchmark
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from loadtest.ceiling import whole_passes_per_s
from loadtest.checks import load_corpus
from loadtest.load import step
from loadtest.report import chosen, write_axis
from loadtest.servers import rss_mb, start_server
from service.precision import cpu_info


class Variant(NamedTuple):
    engine: str
    precision: str
    provider: str  # ATTNSERVE_PROVIDER: "cpu", or "cuda" (refused at start where there is no CUDA)


VARIANTS = {"ort-fp32": Variant("onnxruntime", "fp32", "cpu"), "openvino-fp32": Variant("openvino", "fp32", "cpu"),
            "openvino-bf16": Variant("openvino", "bf16", "cpu"), "cuda-fp32": Variant("onnxruntime", "fp32", "cuda"),
            "cuda-fp16": Variant("onnxruntime", "fp16", "cuda")}
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The flags that decide what a precision can do here."""
    present = cpu_info()[1]
    return [f for f in FLAGS if f in present]


def _runtime_and_batches(bundle: Path, texts: list[str], variant: Variant, batch: int,
                         **settings: Any) -> tuple[Any, list[list[np.ndarray]]]:
    """The service's runtime for ``variant`` and the corpus in batches grouped by length, every shape run once
    (OpenVINO prepares kernels per input shape)."""
    from bundle import load_bundle
    from service.runtime import Runtime
    from service.settings import Settings
    from service.tokenize import TextTokenizer

    loaded = load_bundle(bundle)
    runtime = Runtime(loaded, Settings(model=bundle, engine=variant.engine, precision=variant.precision,
                                       provider=variant.provider, warmup=False, **settings))
    tokenizer = TextTokenizer(bundle / "tokenizer.json", loaded.max_length)
    sequences = sorted((e.ids for e in tokenizer.encode(texts, True)), key=len)
    batches = [sequences[i: i + batch] for i in range(0, len(sequences), batch)]
    for one in batches:
        runtime.run(one, False)
    return runtime, batches


def ceiling(bundle: Path, texts: list[str], variant: Variant, budget_s: float, batch: int = 32) -> float:
    runtime, batches = _runtime_and_batches(bundle, texts, variant, batch, inference_workers=1)
    # the order is shuffled once, the same for every variant
    return whole_passes_per_s(lambda b: runtime.run(b, False), batches, budget_s)


def layout_ceiling(bundle: Path, texts: list[str], variant: Variant, budget_s: float, batch: int = 32) -> float:
    """The ceiling with the service's own layout (the plan's workers, each with its threads, taking the next batch
    of 32 grouped by length): on an AMX CPU, bf16's 2 workers x 1 thread ran such batches 1.14x faster than one
    call on both threads, so the one-call ceiling alone understates what the layout can reach (docs/performance.md).
    Whole passes, as ``ceiling``: the workers share each pass's shuffled order."""
    import threading
    import time

    runtime, batches = _runtime_and_batches(bundle, texts, variant, batch)
    order = [int(i) for i in np.random.default_rng(0).permutation(len(batches))]
    per_pass, lock = sum(map(len, batches)), threading.Lock()

    def work(left: list[int]) -> None:
        while True:
            with lock:
                if not left:
                    return
                i = left.pop()
            runtime.run(batches[i], False)

    passes, done, started, elapsed = 0, 0, time.perf_counter(), 0.0
    while passes == 0 or elapsed * (passes + 1) / passes <= budget_s:
        left = list(order)
        threads = [threading.Thread(target=work, args=(left,)) for _ in range(runtime.plan.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done += per_pass
        passes, elapsed = passes + 1, time.perf_counter() - started
    return done / elapsed


def sweep(bundle: Path, names: list[str], batches: tuple[int, ...] = (1, 8, 32, 64),
          budget_s: float = 3.0) -> dict[str, dict[str, float]]:
    """In-process sentences/s per batch size for each variant this machine runs: where the batcher's sizes
    should sit for each engine and precision (a refused variant is left out)."""
    from bundle import BundleError

    texts, out = load_corpus(paragraphs=False), {}
    for name in names:
        try:
            out[name] = {str(b): ceiling(bundle, texts, VARIANTS[name], budget_s, b) for b in batches}
        except BundleError as exc:
            print(f"{name:14s} refused: {exc}", flush=True)
            continue
        print(f"{name:14s} " + "  ".join(f"batch {b}: {v:7.1f}" for b, v in out[name].items()), flush=True)
    return out


def vectors(url: str, texts: list[str]) -> np.ndarray:
    out = []
    for i in range(0, len(texts), 32):
        body = json.dumps({"texts": texts[i: i + 32], "truncate": True}).encode()
        request = urllib.request.Request(f"{url}/encode", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as r:
            out += json.load(r)["embeddings"]
    return np.asarray(out, dtype=np.float64)


def _refusal(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if "error" in line.lower()]
    return lines[-1] if lines else "the service did not start"


def parse_steps(spec: str) -> tuple[str, ...]:
    """"1,16,64,16x8": clients per step, and after an x the sentences per request (1 when not given)."""
    steps = tuple(s.strip() for s in spec.split(",") if s.strip())
    for s in steps:
        if not re.fullmatch(r"[1-9]\d*(x[1-9]\d*)?", s):
            raise ValueError(f"{s!r} is not CLIENTS or CLIENTSxSENTENCES")
    return steps


def _split(label: str) -> tuple[int, int]:
    clients, _, per = label.partition("x")
    return int(clients), int(per or 1)


def measure(name: str, bundle: Path, output: Path, texts: list[str], seconds: float, port: int,
            concurrency: tuple[str, ...], reference: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray | None]:
    variant = VARIANTS[name]
    line: dict[str, Any] = {"variant": name, **variant._asdict()}
    log = output / f"server-{name}.log"
    env = {"ATTNSERVE_ENGINE": variant.engine, "ATTNSERVE_PRECISION": variant.precision,
           "ATTNSERVE_PROVIDER": variant.provider}
    try:
        proc, ready_s = start_server(bundle, port, env, log)
    except RuntimeError:
        line["refused"] = _refusal(log)
        print(f"{name:14s} refused: {line['refused']}", flush=True)
        return line, None
    try:
        url = f"http://127.0.0.1:{port}"
        got = vectors(url, texts)
        if reference is not None:
            cosines = (got * reference).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
            line["worst_cos"], line["median_cos"] = float(cosines.min()), float(np.median(cosines))
        dims = got.shape[1]
        line["service"] = {c: asdict(step(url, name, texts, *_split(c)[:1], seconds, dims, proc.pid, _split(c)[1]))
                           for c in concurrency}
        line["ready_s"] = ready_s
        line |= rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    line["ceiling_sequences_per_s"] = ceiling(bundle, texts, variant, min(seconds, 5.0))
    line["layout_ceiling_sequences_per_s"] = layout_ceiling(bundle, texts, variant, min(seconds, 5.0))
    best = max(s["sequences_per_s"] for s in line["service"].values())
    line["of_ceiling"] = best / line["ceiling_sequences_per_s"]
    line["of_layout_ceiling"] = best / line["layout_ceiling_sequences_per_s"]
    print(f"{name:14s} ceiling {line['ceiling_sequences_per_s']:7.1f} seq/s (service's layout "
          f"{line['layout_ceiling_sequences_per_s']:.1f})  service best {best:7.1f} ({line['of_ceiling']:.0%}, "
          f"{line['of_layout_ceiling']:.0%})  worst cos {line.get('worst_cos', float('nan')):.7f}", flush=True)
    return line, got


def run(bundle: Path, output: Path, names: list[str], seconds: float, port: int,
        concurrency: tuple[str, ...] = ("1", "16", "64")) -> dict[str, Any]:
    texts = load_corpus(paragraphs=False)
    lines, reference = [], None
    for i, name in enumerate(names):
        line, got = measure(name, bundle, output, texts, seconds, port + i, concurrency, reference)
        if reference is None and got is not None and name == "ort-fp32":
            reference, line["reference"] = got, True
        lines.append(line)
    return {"cpu_flags": cpu_flags(), "concurrency": list(concurrency), "variants": lines}


def table(result: dict[str, Any]) -> str:
    cs = result["concurrency"]
    head = ("| variant | ceiling (seq/s): one call; service's layout | " + " | ".join(
        f"c={_split(c)[0]}" + (f", {_split(c)[1]}/req" if "x" in c else "") + " seq/s (p99 ms)" for c in cs)
            + f" | of ceiling: one call; layout | event loop CPU (ms/req, c={cs[-1]}) | worst cos vs ORT fp32 |")
    rows = [head, "|" + " --- |" * (len(cs) + 5)]
    for line in result["variants"]:
        if "refused" in line:
            rows.append(f"| {line['variant']} | refused at start: {line['refused'].split('error: ')[-1]} |"
                        + " |" * (len(cs) + 3))
            continue
        service = line["service"]
        cells = [f"{service[c]['sequences_per_s']:.0f} ({service[c]['p99_ms']:.0f})" for c in cs]
        cos = (f"{line['worst_cos']:.7f}" if "worst_cos" in line
               else "(the reference)" if line.get("reference") else "n/a (no ort-fp32 in this run)")
        loop = service[cs[-1]]["breakdown_ms"].get("cpu: event loop", float("nan"))
        rows.append(f"| {line['variant']} | {line['ceiling_sequences_per_s']:.0f}; "
                    f"{line['layout_ceiling_sequences_per_s']:.0f} | " + " | ".join(cells)
                    + f" | {line['of_ceiling']:.0%}; {line['of_layout_ceiling']:.0%} | {loop:.2f} | {cos} |")
    return "\n".join(rows)


def sweep_table(sweep: dict[str, dict[str, float]]) -> str:
    if not sweep:
        return ""
    sizes = list(next(iter(sweep.values())))
    rows = ["\nIn process, sentences/s by batch size (grouped by length, every core):\n",
            "| variant | " + " | ".join(f"batch {b}" for b in sizes) + " |", "|" + " --- |" * (len(sizes) + 1)]
    rows += [f"| {name} | " + " | ".join(f"{v:.0f}" for v in line.values()) + " |" for name, line in sweep.items()]
    return "\n".join(rows) + "\n"


def plot(output: Path, result: dict[str, Any], title: str) -> dict[str, list[float]]:
    """precision.png: sentences/s and p99 per step, one bar per variant, each variant's in-process ceiling as a
    dotted line of its colour; a refused variant is named in the legend. Returns the sentences/s bars as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["concurrency"]
    measured = [line for line in result["variants"] if "service" in line]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    width, xs = 0.8 / max(1, len(measured)), np.arange(len(steps))
    for i, line in enumerate(measured):
        colour = f"C{i}"
        ax1.bar(xs + i * width, [line["service"][c]["sequences_per_s"] for c in steps], width, color=colour,
                label=line["variant"])
        ax1.axhline(line["ceiling_sequences_per_s"], color=colour, linestyle=":", label=f"{line['variant']} ceiling")
        ax2.bar(xs + i * width, [line["service"][c]["p99_ms"] for c in steps], width, color=colour)
    for line in result["variants"]:
        if "refused" in line:
            ax1.plot([], [], " ", label=f"{line['variant']}: refused at start")
    labels = [f"{_split(c)[0]} x {_split(c)[1]}" for c in steps]
    for ax, name in ((ax1, "sentences/s"), (ax2, "p99 latency (ms)")):
        ax.set_xticks(xs + width * (len(measured) - 1) / 2, labels)
        ax.set_xlabel("clients x sentences per request")
        ax.set_title(name)
        ax.grid(True, axis="y", alpha=0.3)
    ax2.set_yscale("log")
    fig.suptitle(title, fontsize=9)
    fig.legend(*ax1.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(output / "precision.png", dpi=110)
    drawn = {bars.get_label(): [float(bar.get_height()) for bar in bars] for bars in ax1.containers}
    plt.close(fig)
    return drawn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("build/minilm"))
    parser.add_argument("--output", type=Path, default=Path("results/precision"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,16,64,16x8",
                        help="steps: clients, or CLIENTSxSENTENCES for several sentences per request")
    parser.add_argument("--port", type=int, default=8815)
    parser.add_argument("--sweep", action="store_true", help="also in-process sentences/s at batch 1, 8, 32, 64")
    args = parser.parse_args()
    names = chosen(parser, "--variants", args.variants, VARIANTS)
    args.output.mkdir(parents=True, exist_ok=True)
    try:
        steps = parse_steps(args.concurrency)
    except ValueError as exc:
        parser.error(f"--concurrency: {exc}")
    result = run(args.model, args.output, names, args.seconds, args.port, steps)
    if args.sweep:
        result["sweep"] = sweep(args.model, names)
    flags = " ".join(result["cpu_flags"]) or "none of " + ", ".join(FLAGS)
    written = write_axis(args.output, "precision", "Precision", f"flags {flags}; {args.seconds:g} s per step",
                         table(result) + (sweep_table(result["sweep"]) if "sweep" in result else ""), **result)
    plot(args.output, result, f"attnserve precision axis, {args.model.name}: {written['machine']['cpu']}, "
         f"{written['machine']['cores']} cores, flags {flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
