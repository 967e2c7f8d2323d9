"""What the commands over raw images and a packaged model share: their options and their report."""

from __future__ import annotations

import argparse
import sys

DEFAULT_MODEL = "models:/galaxyzoo-cnn@champion"


def add_image_options(parser, out_default: str, out_help: str, overwrite_help: str, tta_help: str | None = None):
    """IMAGES, `--model`, `--out`, `--tta` (with `tta_help`), `--overwrite`, `--workers` and `--tracking-uri`."""
    parser.add_argument("images", nargs="+", metavar="IMAGES_OR_DIR",
                        help="image files, or folders of .jpg/.jpeg/.png")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a packaged model URI (default {DEFAULT_MODEL}, set by `galaxyzoo promote`)")
    parser.add_argument("--out", default=out_default, help=out_help)
    if tta_help:
        add_switch(parser, "--tta", tta_help)
    add_switch(parser, "--overwrite", overwrite_help, default=False)
    parser.add_argument("--workers", type=int, default=None,
                        help="processes cropping the images while the network runs (default: every core; "
                        "1 crops in this process, then runs the network)")
    parser.add_argument("--tracking-uri",
                        help="MLflow store holding the model (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")


def add_switch(parser, flag: str, help: str, default: bool | None = None) -> None:
    """`flag` alone (true), or `flag true|false`: an MLproject parameter can only pass a value, so a bare
    flag would be out of its reach (`mlflow run -e predict -P overwrite=true`)."""
    parser.add_argument(flag, nargs="?", const=True, default=default, type=_true_or_false, metavar="true|false",
                        help=f"{help}; a bare {flag} takes the next word: put it last, or write {flag} true")


def _true_or_false(text: str) -> bool:
    value = {"true": True, "false": False}.get(text.strip().lower())
    if value is None:
        # A bare switch takes the next word as its value: `predict --tta a.jpg` lands here.
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r} "
                                         "(a bare switch takes the next word: put it last)")
    return value


def report_failed(summary) -> int:
    """Print each failed file on stderr; return how many images succeeded."""
    for file, why in summary.failed:
        print(f"galaxyzoo: {file}: {why}", file=sys.stderr)
    return summary.total - len(summary.failed)
