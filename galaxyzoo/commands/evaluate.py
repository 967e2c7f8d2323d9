"""`galaxyzoo evaluate` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("evaluate", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo evaluate: not implemented yet")
