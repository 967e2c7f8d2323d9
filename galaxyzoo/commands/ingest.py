"""`galaxyzoo ingest` (placeholder until its issue lands)."""


def add_parser(subparsers):
    p = subparsers.add_parser("ingest", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("galaxyzoo ingest: not implemented yet")
