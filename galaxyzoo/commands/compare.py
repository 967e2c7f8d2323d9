"""`galaxyzoo compare` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("compare", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo compare: not implemented yet")
