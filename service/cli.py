"""``attnserve serve``: every setting is a flag, generated from the Settings object (its description is the
help text), and an ATTNSERVE_* environment variable; a flag overrides the variable."""

from __future__ import annotations

import argparse
import sys
import typing

from .settings import Settings


def _flag_help(name: str) -> tuple[str, dict[str, typing.Any]]:
    field = Settings.model_fields[name]
    default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    shown = ",".join(map(str, default)) if isinstance(default, list | dict) else default
    extra: dict[str, typing.Any] = {}
    if typing.get_origin(field.annotation) is typing.Literal:
        extra["choices"] = typing.get_args(field.annotation)
    elif field.annotation in ("bool", bool):
        extra["metavar"] = "{true,false}"
    text = f"{field.description} [ATTNSERVE_{name.upper()}; default: {'none' if shown in (None, '') else shown}]"
    return text.replace("%", "%%"), extra


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="serve a bundle over HTTP",
        description="Serve a model bundle. Every setting below is also an ATTNSERVE_* environment variable; "
                    "a flag overrides it. Values are checked as the environment's are.",
    )
    for name in Settings.model_fields:
        text, extra = _flag_help(name)
        if name == "model":  # --model DIR --model DIR2: several models
            extra["action"] = "append"
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=text, **extra)
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn
    from pydantic import ValidationError

    from bundle import BundleError

    from .app import create_app, load_context
    from .connections import uvicorn_config

    overrides = {name: value for name in Settings.model_fields if (value := getattr(args, name)) is not None}
    if "model" in overrides:  # each --model may itself be comma-separated
        overrides["model"] = ",".join(overrides["model"])
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
