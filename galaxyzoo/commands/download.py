"""`galaxyzoo download`: fetch the public GZ2 release into a raw data folder."""

import argparse

FILE_NAMES = ("hart16", "mapping", "images")


def _names(value: str) -> list[str]:
    """A comma-separated list of file names, e.g. `hart16,mapping`."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in FILE_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"invalid file name(s) {bad or value!r}; choose from {', '.join(FILE_NAMES)}")
    return names


def add_parser(subparsers):
    p = subparsers.add_parser(
        "download",
        help="download the GZ2 catalogue, filename mapping and images (resumable)",
        description="Download gz2_hart16.csv.gz, gz2_filename_mapping.csv and images_gz2.zip into OUT, "
        "resuming interrupted transfers, then unpack them into OUT/gz2_hart16.csv, "
        "OUT/gz2_filename_mapping.csv and OUT/images/{asset_id}.jpg. Files already in place are skipped.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="raw data folder to fill")
    p.add_argument("--only", type=_names, action="extend", metavar="NAMES",
                   help=f"comma-separated subset of {','.join(FILE_NAMES)} (default: all; "
                   "`--only hart16,mapping` skips the 3.4 GB image archive)")
    p.add_argument("--mirror", metavar="BASE_URL",
                   help="fetch every file as BASE_URL/<filename> (gz2_hart16.csv.gz, gz2_filename_mapping.csv, "
                   "images_gz2.zip)")
    p.add_argument("--hart16-url", metavar="URL", help="URL of gz2_hart16.csv.gz (overrides --mirror)")
    p.add_argument("--mapping-url", metavar="URL", help="URL of gz2_filename_mapping.csv (overrides --mirror)")
    p.add_argument("--images-url", metavar="URL", help="URL of images_gz2.zip (overrides --mirror)")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep the .csv.gz and .zip after unpacking (default: remove them, saving ~3.5 GB)")
    p.add_argument("--retries", type=int, default=4, metavar="N",
                   help="failed attempts in a row (without progress) before giving up (default: 4)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="network timeout per connection and read (default: 60)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.data.download import download, resolve_sources

    urls = {name: url for name, url in
            (("hart16", args.hart16_url), ("mapping", args.mapping_url), ("images", args.images_url))
            if url is not None}  # given empty, it is refused as no URL rather than read as "not given"
    sources = resolve_sources(mirror=args.mirror, urls=urls)
    products = download(args.out, sources, only=args.only, keep_archives=args.keep_archives,
                        retries=args.retries, timeout=args.timeout)
    for path in products.values():
        print(f"ready: {path}")
    return 0
