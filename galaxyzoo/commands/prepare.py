"""`galaxyzoo prepare` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("prepare", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo prepare: not implemented yet")
