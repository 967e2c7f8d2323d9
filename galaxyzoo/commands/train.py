"""`galaxyzoo train` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo train: not implemented yet")
