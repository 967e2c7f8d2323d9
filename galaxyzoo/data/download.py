"""Fetch the public Galaxy Zoo 2 release into a raw data folder.

Three files make the raw layout every later stage reads:

    RAW/gz2_hart16.csv             <- gz2_hart16.csv.gz (Hart et al. 2016, gunzipped)
    RAW/gz2_filename_mapping.csv   <- as downloaded (Zenodo 3565489)
    RAW/images/{asset_id}.jpg      <- images_gz2.zip (Zenodo 3565489, extracted)

Downloads go to `NAME.part` and resume with an HTTP `Range` request after an
interruption; a file gets its final name only once every byte is there. Only
the standard library speaks HTTP, so downloading adds no dependency.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import json
import logging
import os
import shutil
import ssl
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm import tqdm

from galaxyzoo import __version__
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.folders import writable_folder
from galaxyzoo.system.locks import writer_lock

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
MANIFEST = ".download.json"  # what download finished in the raw folder: each product's files or bytes
MAX_TIMEOUT = 86_400.0  # seconds a read may stall: a day; the socket layer overflows on inf
USER_AGENT = f"galaxyzoo/{__version__} (Python urllib)"
# Statuses worth another try: the server or a proxy is busy, not the request wrong.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Errors of the transfer itself (connection refused, reset, stalled, cut short).
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError)


@dataclass(frozen=True)
class Source:
    """One file of the release: where it lives and what it becomes in the raw folder.

    `filename` is the downloaded file's name (also its name on a mirror),
    `product` the path it yields in the raw folder, and `unpack` how:
    "gunzip", "unzip" (JPEGs into a folder) or None (kept as downloaded).
    `size` (bytes) and `checksum` ("sha256:<hex>", any hashlib algorithm) are
    verified when given; None means not known, and nothing is checked.
    """

    name: str
    url: str
    filename: str
    product: str
    unpack: str | None = None
    size: int | None = None
    checksum: str | None = None


# Sizes are known only roughly (364 MB csv, 13 MB mapping, 3.4 GB zip), so no
# exact size or checksum is pinned; gzip and zip carry their own CRCs.
KNOWN_FILES: dict[str, Source] = {
    "hart16": Source(
        "hart16",
        "https://gz2hart.s3.amazonaws.com/gz2_hart16.csv.gz",
        "gz2_hart16.csv.gz",
        "gz2_hart16.csv",
        unpack="gunzip",
    ),
    "mapping": Source(
        "mapping",
        "https://zenodo.org/records/3565489/files/gz2_filename_mapping.csv?download=1",
        "gz2_filename_mapping.csv",
        "gz2_filename_mapping.csv",
    ),
    "images": Source(
        "images",
        "https://zenodo.org/records/3565489/files/images_gz2.zip?download=1",
        "images_gz2.zip",
        "images",
        unpack="unzip",
    ),
}


class _Interrupted(Exception):
    """A transfer that ended early or was refused for now; worth another try."""


def resolve_sources(
    known: dict[str, Source] = KNOWN_FILES,
    mirror: str | None = None,
    urls: dict[str, str] | None = None,
) -> dict[str, Source]:
    """The sources with their URLs overridden.

    A `mirror` base URL serves every file as `BASE/<filename>`; an entry of
    `urls` (keyed by source name) overrides one file, mirror or not.
    """
    urls = urls or {}
    _check_names(urls, known)
    if mirror is not None:
        _check_url(mirror, "--mirror")
    resolved = {}
    for name, source in known.items():
        if name in urls:
            url = _check_url(urls[name], f"--{name}-url")
        else:
            url = f"{mirror.rstrip('/')}/{source.filename}" if mirror else source.url
        resolved[name] = dataclasses.replace(source, url=url)
    return resolved


def _check_url(url: str, option: str) -> str:
    """`url` if it is an http(s), ftp or file URL with somewhere to go; else a GalaxyZooError naming `option`."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise GalaxyZooError(f"{option} {url!r}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https", "ftp", "file") or not (parts.netloc or parts.path.strip("/")):
        raise GalaxyZooError(f"{option} {url!r}: not a URL; expected http://, https://, ftp:// or file://")
    return url


def download(
    out_dir: str | Path,
    sources: dict[str, Source] | None = None,
    only: list[str] | tuple[str, ...] | None = None,
    keep_archives: bool = False,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Download, verify and unpack the release into `out_dir`; returns {name: product path}.

    Re-running is cheap: a file whose product is already in place is skipped
    without touching the network, and a kept archive is unpacked without
    downloading it again. Archives (.gz, .zip) are removed after a successful
    unpack unless `keep_archives`. One download per folder at a time (`RAW.lock`, beside it): two
    would share the partial files and one's unpacking would empty the other's.
    """
    if retries < 0:
        raise GalaxyZooError(f"--retries: must be 0 or more, got {retries}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise GalaxyZooError(f"--timeout: must be greater than 0 and at most {MAX_TIMEOUT:g} seconds, got {timeout}")
    sources = KNOWN_FILES if sources is None else sources
    names = list(sources) if only is None else list(dict.fromkeys(only))
    _check_names(names, sources)
    out = writable_folder(Path(out_dir), str(out_dir))
    with writer_lock(out):  # RAW.lock beside the folder, so RAW holds only the release
        return _download_into(out, names, sources, keep_archives, retries, backoff, timeout)


def _download_into(out: Path, names: list[str], sources: dict[str, Source], keep_archives: bool, retries: int,
                   backoff: float, timeout: float) -> dict[str, Path]:
    """`download`'s work, under the folder's lock."""
    products = {}
    for name in names:
        source = sources[name]
        product = out / source.product
        products[name] = product
        if product.exists() or product.is_symlink():
            _check_present(product, source, _manifest(out).get(source.product))
            logger.info("%s already present; skipping %s", product, source.filename)
            continue
        archive = out / source.filename
        if not archive.exists():
            fetch(source.url, archive, size=source.size, checksum=source.checksum,
                  retries=retries, backoff=backoff, timeout=timeout)
        if source.unpack == "gunzip":
            gunzip(archive, product)
        elif source.unpack == "unzip":
            extract_images(archive, product)
        _record(out, source.product, _measure(product, source))
        if source.unpack and not keep_archives:
            archive.unlink()
    return products


def _measure(product: Path, source: Source) -> dict[str, int]:
    """What a finished product holds, as the manifest records it: a folder's files, a file's bytes."""
    if source.unpack == "unzip":
        return {"files": sum(1 for p in product.iterdir() if p.is_file())}
    return {"bytes": product.stat().st_size}


def _check_present(product: Path, source: Source, recorded: dict | None) -> None:
    """Refuse a product in place that is not what download made: the wrong kind, empty, or (when the
    manifest recorded it) changed since; warn about one download did not make (a folder made by hand)."""
    folder = source.unpack == "unzip"
    if not (product.is_dir() if folder else product.is_file()):
        problem = f"is in the way: expected {'a folder' if folder else 'a file'}"
    elif folder and not any(product.iterdir()):
        problem = "is an empty folder"
    elif not folder and product.stat().st_size == 0:
        problem = "is an empty file"
    elif recorded is not None and (measured := _measure(product, source)) != recorded:
        problem = f"has changed since download made it ({measured}, recorded {recorded})"
    else:
        if recorded is None:
            logger.warning("%s was not made by download (no record in %s): used as it is, %s", product,
                           product.parent / MANIFEST, _measure(product, source))
        return
    raise GalaxyZooError(f"{product}: {problem}; move it aside and run download again")


def _manifest(out: Path) -> dict:
    """What download recorded of the products it finished in `out` (`MANIFEST`); {} if nothing yet."""
    try:
        recorded = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _record(out: Path, product: str, measure: dict[str, int]) -> None:
    """Add `product` to the manifest (under the download's lock), keeping what earlier downloads recorded."""
    manifest = {**_manifest(out), product: measure}
    fd, part = tempfile.mkstemp(dir=out, prefix=MANIFEST + ".")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(manifest, indent=2) + "\n")
    os.chmod(part, 0o644)  # readable by whoever shares the raw folder, not mkstemp's 0600
    os.replace(part, out / MANIFEST)


def fetch(
    url: str,
    dest: str | Path,
    size: int | None = None,
    checksum: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming and retrying.

    After a failure the transfer resumes from the bytes already on disk, after
    `backoff * 2**k` seconds. `retries` bounds the failures in a row that made
    no progress, so a long download over a flaky link still completes.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        before = _size(part)
        try:
            _transfer(url, part, timeout)
            break
        except (_Interrupted, *NETWORK_ERRORS) as exc:
            failures = 0 if _size(part) > before else failures + 1
            reason = _reason(exc)
            if failures > retries:
                kept = f" ({_size(part):,} bytes kept in {part}; run again to resume)" if _size(part) else ""
                raise GalaxyZooError(f"could not download {url}: {reason}{kept}") from None
            delay = backoff * 2 ** max(failures - 1, 0)
            logger.warning("%s: %s; retrying in %.0f s", url, reason, delay)
            time.sleep(delay)
    _verify(part, url, size, checksum)
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One request that appends the missing bytes of `url` to `part`.

    Raises `_Interrupted` when the body ends before the announced total, so the
    caller can resume from what did arrive.
    """
    offset = _size(part)
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing left to send: either the part is complete or it is stale.
            if _content_range(exc.headers.get("Content-Range"))[1] == offset:
                return
            part.unlink()
            return _transfer(url, part, timeout)  # without Range now, so this cannot come back here
        if exc.code in RETRY_STATUSES:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from None
        raise GalaxyZooError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # a file:// mirror without the file: no use retrying
            raise GalaxyZooError(f"could not download {url}: no such file") from None
        raise
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"server answered Range bytes={offset}- from byte {start}; starting over")
        else:
            # The server ignored Range and sends the whole file: start over.
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        if total is not None:
            _check_free_space(part.parent, total - offset, url)
        with open(part, "ab" if offset else "wb") as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), mininterval=1.0,
        ) as bar:
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
    received = _size(part)
    if total is not None and received != total:
        raise _Interrupted(f"connection ended after {received:,} of {total:,} bytes")


def _verify(path: Path, url: str, size: int | None, checksum: str | None) -> None:
    """Check a complete download against its known size and checksum; remove it if wrong."""
    actual = _size(path)
    if size is not None and actual != size:
        path.unlink()
        raise GalaxyZooError(f"{url}: got {actual:,} bytes, expected {size:,}; removed the download, "
                             "run again to fetch a fresh copy")
    if checksum:
        algorithm, _, expected = checksum.partition(":")
        digest = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected.lower():
            path.unlink()
            raise GalaxyZooError(f"{url}: {algorithm} is {digest.hexdigest()}, expected {expected}; removed the "
                                 "download, run again to fetch a fresh copy")


def gunzip(archive: str | Path, dest: str | Path) -> Path:
    """Decompress `archive` to `dest` (through `dest.part`), checking the gzip CRC and length.

    A corrupt archive is removed so that the next run downloads it again.
    """
    archive, dest = Path(archive), Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz, open(part, "wb") as out, tqdm(
            total=_size(archive), unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"gunzip {archive.name}", mininterval=1.0,
        ) as bar:
            while chunk := gz.read(CHUNK):
                out.write(chunk)
                bar.update(raw.tell() - bar.n)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        part.unlink(missing_ok=True)
        archive.unlink()
        raise GalaxyZooError(f"{archive} is corrupt ({exc or type(exc).__name__}); removed it, run download "
                             "again to fetch a fresh copy") from None
    os.replace(part, dest)
    return dest


def extract_images(archive: str | Path, dest: str | Path) -> int:
    """Extract the JPEGs of `archive` flat into the folder `dest`; returns how many.

    Entries are read as `[any folders/]{asset_id}.jpg`, so the release's
    `images/` prefix (or any other top folder) does not matter. Every entry is
    checked before anything is written: an absolute path, a `..` component or
    a symbolic link refuses the whole archive. Files land in `dest.part` and
    the folder is renamed to `dest` only when every CRC has been checked.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        archive.unlink()
        raise GalaxyZooError(f"{archive} is not a valid zip file ({exc}); removed it, run download again "
                             "to fetch a fresh copy") from None
    with zf:
        members = image_members(zf, archive)
        part = dest.with_name(dest.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        try:
            for name, info in tqdm(members.items(), unit="file", desc=f"unzip {archive.name}", mininterval=1.0):
                # Reading a member to its end checks its CRC-32.
                with zf.open(info) as src, open(part / name, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            shutil.rmtree(part)
            archive.unlink()
            raise GalaxyZooError(f"{archive} is corrupt ({exc}); removed it, run download again to fetch "
                                 "a fresh copy") from None
    os.replace(part, dest)
    return len(members)


def image_members(zf: zipfile.ZipFile, archive: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's JPEG entries keyed by file name, after refusing any unsafe entry.

    Folders, non-JPEG files and macOS metadata (`__MACOSX/`, `._*`) are skipped.
    """
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        raw = info.filename
        path = PurePosixPath(raw.replace("\\", "/"))
        if path.is_absolute() or PureWindowsPath(raw).drive or ".." in path.parts:
            raise GalaxyZooError(f"{archive}: refusing unsafe entry {raw!r} (absolute path or '..'); "
                                 "nothing was extracted")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise GalaxyZooError(f"{archive}: refusing symbolic link entry {raw!r}; nothing was extracted")
        hidden = any(p.startswith(".") or p == "__MACOSX" for p in path.parts)
        if info.is_dir() or hidden or path.suffix.lower() != ".jpg":
            continue
        if path.name in members:
            raise GalaxyZooError(f"{archive}: two entries named {path.name!r} "
                                 f"({members[path.name].filename!r} and {raw!r})")
        members[path.name] = info
    if not members:
        raise GalaxyZooError(f"{archive}: no .jpg images inside")
    return members


def _check_names(names, sources: dict[str, Source]) -> None:
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise GalaxyZooError(f"unknown file name(s) {unknown}; choose from {', '.join(sources)}")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range: bytes A-B/T` or `bytes */T` header."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes "):].partition("/")
    start = span.partition("-")[0]
    return (int(start) if start.isdigit() else None), (int(total) if total.isdigit() else None)


def _check_free_space(folder: Path, needed: int, url: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise GalaxyZooError(f"not enough disk space in {folder} for {url}: need {needed:,} bytes, "
                             f"{free:,} free")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _reason(exc: BaseException) -> str:
    """A one-line reason for a network failure."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
