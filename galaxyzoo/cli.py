"""The `galaxyzoo` command line: one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import sys

from galaxyzoo import __version__
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.logs import setup_logging

# In pipeline order; each names a module in galaxyzoo.commands.
COMMANDS = (
    "synth",
    "download",
    "ingest",
    "prepare",
    "split",
    "verify",
    "train",
    "evaluate",
    "sweep",
    "ensemble",
    "promote",
    "predict",
    "embed",
    "similar",
    "compare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galaxyzoo", description="Learn Galaxy Zoo 2 morphology from galaxy images."
    )
    parser.add_argument("--version", action="version", version=f"galaxyzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"galaxyzoo.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args) or 0)
    except GalaxyZooError as exc:
        print(f"galaxyzoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("galaxyzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
