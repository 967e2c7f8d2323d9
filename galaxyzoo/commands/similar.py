"""`galaxyzoo similar`: the nearest neighbours of one galaxy in an embeddings file."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "similar",
        help="list the galaxies nearest to one galaxy in an embeddings file",
        description="Read a file written by `galaxyzoo embed` and print the query galaxy, then its k nearest "
        "galaxies by cosine distance between their features.",
    )
    p.add_argument("--embeddings", required=True, metavar="FILE", help="a .parquet or .npy file from `galaxyzoo embed`")
    p.add_argument("--query", required=True, metavar="NAME",
                   help="the galaxy: its file as embed wrote it, or that file's name or stem (e.g. 100008)")
    p.add_argument("-k", type=int, default=5, help="how many neighbours (default 5)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.registry.similar import similar

    table = similar(args.embeddings, args.query, args.k)
    table["distance"] = table["distance"].map(lambda d: f"{d:.4f}")
    print(table.to_string(index=False))
    return 0
