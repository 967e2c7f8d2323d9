"""One light module per CLI subcommand.

Each module defines `add_parser(subparsers)` and a `run(args) -> int` that
imports the heavy implementation only when the command actually runs, so
`galaxyzoo --help` never pays for TensorFlow.
"""
