"""`galaxyzoo promote` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("promote", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo promote: not implemented yet")
