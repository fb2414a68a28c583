"""attnserve {export,serve}: one entry point over the subcommands of the export and service packages."""

from __future__ import annotations

import argparse

from export.cli import add_parser as add_export
from service.cli import add_parser as add_serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnserve", description="Serve Transformer encoders from model bundles.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export(sub)
    add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
