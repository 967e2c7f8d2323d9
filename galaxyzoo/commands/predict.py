"""`galaxyzoo predict` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("predict", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo predict: not implemented yet")
