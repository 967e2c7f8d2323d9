"""`galaxyzoo download` against a local HTTP server on 127.0.0.1 (no other network)."""

import dataclasses
import gzip
import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import pytest

from galaxyzoo.data import download as dl
from galaxyzoo.cli import main
from galaxyzoo.commands.download import FILE_NAMES
from galaxyzoo.errors import GalaxyZooError

CSV = b"dr7objid,ra,dec\n587722981741363294,1.5,-0.25\n587722981741363323,2.5,0.75\n"
MAPPING = b"objid,sample,asset_id\n587722981741363294,original,1\n587722981741363323,original,2\n"
FAST = dict(retries=0, backoff=0.0, timeout=10.0)


@dataclasses.dataclass
class ServerState:
    """What the test server serves and how it misbehaves; it records every request."""

    files: dict[str, bytes]
    requests: list[dict] = dataclasses.field(default_factory=list)
    drop_halfway: set[str] = dataclasses.field(default_factory=set)  # cut the next response to these in half
    unavailable: int = 0  # answer this many requests with 503
    unavailable_after_drop: int = 0  # then set `unavailable` to this after cutting a response
    ignore_range: bool = False


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        state: ServerState = self.server.state
        name = urlparse(self.path).path.lstrip("/")
        record = {"name": name, "range": self.headers.get("Range"), "status": None, "sent": 0}
        state.requests.append(record)
        if state.unavailable:
            state.unavailable -= 1
            return self._reply(record, 503)
        data = state.files.get(name)
        if data is None:
            return self._reply(record, 404)
        status, start, headers = 200, 0, {}
        if record["range"] and not state.ignore_range:
            start = int(record["range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                return self._reply(record, 416, {"Content-Range": f"bytes */{len(data)}"})
            status, headers = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if name in state.drop_halfway:
            # Announce the whole body, send half, hang up (HTTP/1.0 closes after the reply).
            state.drop_halfway.discard(name)
            state.unavailable = state.unavailable_after_drop
            body = body[: len(body) // 2]
        # Recorded before the write: the client may read the body and return before this thread goes on.
        record["status"], record["sent"] = status, len(body)
        self.wfile.write(body)

    def _reply(self, record, status, headers=None):
        record["status"] = status
        self.send_response(status)
        for key, value in {**(headers or {}), "Content-Length": "0"}.items():
            self.send_header(key, value)
        self.end_headers()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", pixels)
    assert ok
    return buf.tobytes()


IMAGES = {f"{asset_id}.jpg": jpeg(asset_id) for asset_id in (1, 2, 3)}


def make_zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A zip of `entries` (stored, so tests can corrupt data in place) plus symbolic links."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix, so external_attr carries the file mode
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buf.getvalue()


def release_files() -> dict[str, bytes]:
    """Tiny stand-ins for the three release files, under their real names."""
    return {
        "gz2_hart16.csv.gz": gzip.compress(CSV),
        "gz2_filename_mapping.csv": MAPPING,
        "images_gz2.zip": make_zip({f"images/{n}": d for n, d in IMAGES.items()}),
    }


@pytest.fixture
def server():
    state = ServerState(files=release_files())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_port}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def sources(server, **changes):
    """The release's sources served by the test server, with optional per-file changes."""
    resolved = dl.resolve_sources(mirror=server.base + "/")
    return {name: dataclasses.replace(s, **changes.get(name, {})) for name, s in resolved.items()}


def assert_raw_layout(raw: Path):
    assert (raw / "gz2_hart16.csv").read_bytes() == CSV
    assert (raw / "gz2_filename_mapping.csv").read_bytes() == MAPPING
    assert {p.name: p.read_bytes() for p in (raw / "images").iterdir()} == IMAGES


def test_full_download_unpacks_the_raw_layout_and_reruns_offline(server, tmp_path):
    raw = tmp_path / "raw"
    products = dl.download(raw, sources(server), **FAST)

    assert products == {"hart16": raw / "gz2_hart16.csv", "mapping": raw / "gz2_filename_mapping.csv",
                        "images": raw / "images"}
    assert_raw_layout(raw)
    # Archives are removed by default; no partial files are left behind.
    assert sorted(p.name for p in raw.iterdir()) == [".download.json", "gz2_filename_mapping.csv", "gz2_hart16.csv",
                                                     "images"]
    assert [r["range"] for r in server.requests] == [None, None, None]

    dl.download(raw, sources(server), **FAST)
    assert len(server.requests) == 3, "a complete raw folder is skipped without any request"


def test_a_product_in_place_that_download_did_not_make_whole_is_refused(server, tmp_path, caplog):
    """An empty `images/` made by hand, a file in its place, or images lost since must not read as done."""
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    with pytest.raises(GalaxyZooError, match=r"raw/images: is an empty folder; move it aside and run download"):
        dl.download(raw, sources(server), only=["images"], **FAST)
    (raw / "images").rmdir()
    (raw / "images").write_text("not a folder")
    with pytest.raises(GalaxyZooError, match=r"raw/images: is in the way: expected a folder"):
        dl.download(raw, sources(server), only=["images"], **FAST)
    (raw / "images").unlink()
    dl.download(raw, sources(server), only=["images"], **FAST)
    next((raw / "images").iterdir()).unlink()  # one image lost since
    with pytest.raises(GalaxyZooError, match=r"raw/images: has changed since download made it \(\{'files': "
                                             f"{len(IMAGES) - 1}" r"\}, recorded \{'files': " f"{len(IMAGES)}"):
        dl.download(raw, sources(server), only=["images"], **FAST)
    (raw / "gz2_filename_mapping.csv").write_bytes(MAPPING)  # copied in by hand: used, with a warning
    dl.download(raw, sources(server), only=["mapping"], **FAST)
    assert "gz2_filename_mapping.csv was not made by download" in caplog.text


def test_keep_archives_unpacks_again_without_downloading(server, tmp_path):
    dl.download(tmp_path, sources(server), keep_archives=True, **FAST)
    assert (tmp_path / "gz2_hart16.csv.gz").read_bytes() == server.files["gz2_hart16.csv.gz"]
    assert (tmp_path / "images_gz2.zip").read_bytes() == server.files["images_gz2.zip"]

    (tmp_path / "gz2_hart16.csv").unlink()
    dl.download(tmp_path, sources(server), only=["hart16"], keep_archives=True, **FAST)
    assert (tmp_path / "gz2_hart16.csv").read_bytes() == CSV
    assert len(server.requests) == 3


@pytest.mark.parametrize("prefix", ["images/", "", "images_gz2/images/"])
def test_zip_folder_prefix_does_not_matter(server, tmp_path, prefix):
    entries = {f"{prefix}{n}": d for n, d in IMAGES.items()}
    entries |= {"__MACOSX/images/._1.jpg": b"metadata", f"{prefix}README.txt": b"not an image"}
    server.files["images_gz2.zip"] = make_zip(entries)
    dl.download(tmp_path, sources(server), only=["images"], **FAST)
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == IMAGES


def test_interrupted_transfer_resumes_on_the_next_run(server, tmp_path):
    data = server.files["images_gz2.zip"]
    half = len(data) // 2
    # The first run gets half the archive, then the server is down for its retry.
    server.drop_halfway.add("images_gz2.zip")
    server.unavailable_after_drop = 1
    with pytest.raises(GalaxyZooError, match=r"could not download http://127\.0\.0\.1:\d+/images_gz2\.zip"):
        dl.download(tmp_path, sources(server), only=["images"], **FAST)
    assert (tmp_path / "images_gz2.zip.part").stat().st_size == half
    assert not (tmp_path / "images").exists()
    assert [(r["range"], r["status"], r["sent"]) for r in server.requests] == [(None, 200, half),
                                                                                (f"bytes={half}-", 503, 0)]

    server.requests.clear()
    dl.download(tmp_path, sources(server), only=["images"], keep_archives=True, **FAST)
    assert server.requests == [{"name": "images_gz2.zip", "range": f"bytes={half}-", "status": 206,
                                "sent": len(data) - half}]
    assert (tmp_path / "images_gz2.zip").read_bytes() == data
    assert not (tmp_path / "images_gz2.zip.part").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == IMAGES


def test_a_retry_resumes_within_one_run(server, tmp_path):
    data = server.files["gz2_hart16.csv.gz"]
    half = len(data) // 2
    server.drop_halfway.add("gz2_hart16.csv.gz")
    # retries=0: a failure that made progress does not use up a retry.
    dl.download(tmp_path, sources(server), only=["hart16"], **FAST)
    assert [(r["range"], r["status"], r["sent"]) for r in server.requests] == [
        (None, 200, half), (f"bytes={half}-", 206, len(data) - half)]
    assert (tmp_path / "gz2_hart16.csv").read_bytes() == CSV


def test_server_ignoring_range_starts_over(server, tmp_path):
    data = server.files["gz2_filename_mapping.csv"]
    (tmp_path / "gz2_filename_mapping.csv.part").write_bytes(b"x" * 10)  # not even the right bytes
    server.ignore_range = True
    dl.download(tmp_path, sources(server), only=["mapping"], **FAST)
    assert [(r["range"], r["status"], r["sent"]) for r in server.requests] == [("bytes=10-", 200, len(data))]
    assert (tmp_path / "gz2_filename_mapping.csv").read_bytes() == data


def test_a_complete_part_file_is_finished_without_a_body(server, tmp_path):
    data = server.files["gz2_filename_mapping.csv"]
    (tmp_path / "gz2_filename_mapping.csv.part").write_bytes(data)
    dl.download(tmp_path, sources(server), only=["mapping"], **FAST)
    assert [(r["range"], r["status"]) for r in server.requests] == [(f"bytes={len(data)}-", 416)]
    assert (tmp_path / "gz2_filename_mapping.csv").read_bytes() == data


def test_a_part_file_longer_than_the_file_is_replaced(server, tmp_path):
    data = server.files["gz2_filename_mapping.csv"]
    (tmp_path / "gz2_filename_mapping.csv.part").write_bytes(b"x" * (len(data) + 5))
    dl.download(tmp_path, sources(server), only=["mapping"], **FAST)
    assert [(r["range"], r["status"]) for r in server.requests] == [(f"bytes={len(data) + 5}-", 416), (None, 200)]
    assert (tmp_path / "gz2_filename_mapping.csv").read_bytes() == data


def test_busy_server_is_retried_then_gives_up(server, tmp_path, caplog):
    server.unavailable = 2
    with caplog.at_level("INFO", logger="galaxyzoo.data.download"):
        dl.download(tmp_path, sources(server), only=["mapping"], retries=2, backoff=0.0)
    assert [r["status"] for r in server.requests] == [503, 503, 200]
    # Through the package's logging (stderr under the CLI), not print: stdout stays clean.
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == ["HTTP 503 Service Unavailable; retrying in 0 s"] * 2

    server.unavailable = 3
    with pytest.raises(GalaxyZooError, match=r"/gz2_hart16\.csv\.gz: HTTP 503"):
        dl.download(tmp_path, sources(server), only=["hart16"], retries=2, backoff=0.0)
    assert not (tmp_path / "gz2_hart16.csv").exists()


def test_404_is_one_clear_error_without_retries(server, tmp_path):
    del server.files["gz2_filename_mapping.csv"]
    with pytest.raises(GalaxyZooError) as err:
        dl.download(tmp_path, sources(server), only=["mapping"], retries=3, backoff=0.0)
    assert str(err.value) == f"could not download {server.base}/gz2_filename_mapping.csv: HTTP 404 Not Found"
    assert len(server.requests) == 1
    assert not (tmp_path / "gz2_filename_mapping.csv").exists()


def test_unreachable_server_names_the_url(tmp_path):
    with socket.socket() as sock:  # a port that nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gz2_filename_mapping.csv"
    with pytest.raises(GalaxyZooError, match=f"could not download {url}: .*refused"):
        dl.fetch(url, tmp_path / "m.csv", retries=2, backoff=0.0)


def find(root: Path, name: str) -> list[Path]:
    return list(root.rglob(name))


@pytest.mark.parametrize("bad", ["../evil.jpg", "images/../../evil.jpg", "/{tmp}-abs.jpg", "C:\\evil.jpg"])
def test_unsafe_zip_entries_are_refused(server, tmp_path, bad):
    bad = bad.format(tmp=tmp_path.name)
    raw = tmp_path / "deep" / "raw"
    server.files["images_gz2.zip"] = make_zip({"images/1.jpg": IMAGES["1.jpg"], bad: b"evil"})
    with pytest.raises(GalaxyZooError, match="images_gz2.zip: refusing unsafe entry") as err:
        dl.download(raw, sources(server), only=["images"], **FAST)
    assert repr(bad) in str(err.value)
    assert not (raw / "images").exists() and not (raw / "images.part").exists()
    assert find(tmp_path, "*evil.jpg") == [] and not Path(f"/{tmp_path.name}-abs.jpg").exists()


def test_symlink_zip_entries_are_refused(server, tmp_path):
    raw = tmp_path / "raw"
    server.files["images_gz2.zip"] = make_zip({"images/1.jpg": IMAGES["1.jpg"]},
                                              symlinks={"images/2.jpg": str(tmp_path / "outside.jpg")})
    with pytest.raises(GalaxyZooError, match=r"images_gz2.zip: refusing symbolic link entry 'images/2.jpg'"):
        dl.download(raw, sources(server), only=["images"], **FAST)
    assert not (raw / "images").exists() and not (tmp_path / "outside.jpg").exists()


def test_corrupt_zip_member_is_detected_by_its_crc(server, tmp_path):
    blob = bytearray(server.files["images_gz2.zip"])
    at = bytes(blob).index(IMAGES["2.jpg"]) + len(IMAGES["2.jpg"]) // 2
    blob[at] ^= 0xFF
    server.files["images_gz2.zip"] = bytes(blob)
    with pytest.raises(GalaxyZooError, match=r"images_gz2.zip is corrupt \(Bad CRC-32 for file 'images/2.jpg'\)"):
        dl.download(tmp_path, sources(server), only=["images"], **FAST)
    assert not (tmp_path / "images").exists() and not (tmp_path / "images.part").exists()
    assert not (tmp_path / "images_gz2.zip").exists(), "a corrupt archive is removed so a rerun fetches it again"


def test_not_a_zip_is_a_clear_error(server, tmp_path):
    server.files["images_gz2.zip"] = b"<html>not found</html>"
    with pytest.raises(GalaxyZooError, match="images_gz2.zip is not a valid zip file"):
        dl.download(tmp_path, sources(server), only=["images"], **FAST)


def corrupt_crc(gz: bytes) -> bytes:
    blob = bytearray(gz)
    blob[-8] ^= 0xFF  # the trailer is CRC-32 then length
    return bytes(blob)


@pytest.mark.parametrize("corrupt, reason", [(corrupt_crc, "CRC check failed"),
                                             (lambda gz: gz[:-12], "end-of-stream marker"),
                                             (lambda gz: b"<html>" + gz, "Not a gzipped file")])
def test_corrupt_gzip_is_detected(server, tmp_path, corrupt, reason):
    server.files["gz2_hart16.csv.gz"] = corrupt(server.files["gz2_hart16.csv.gz"])
    with pytest.raises(GalaxyZooError, match=f"gz2_hart16.csv.gz is corrupt .*{reason}"):
        dl.download(tmp_path, sources(server), only=["hart16"], **FAST)
    assert list(tmp_path.iterdir()) == []


def test_known_size_and_checksum_are_verified(server, tmp_path):
    data = server.files["gz2_filename_mapping.csv"]
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    dl.download(tmp_path / "ok", sources(server, mapping={"checksum": good, "size": len(data)}), **FAST,
                only=["mapping"])
    assert (tmp_path / "ok" / "gz2_filename_mapping.csv").read_bytes() == data

    bad = "sha256:" + hashlib.sha256(b"other").hexdigest()
    with pytest.raises(GalaxyZooError, match="sha256 is .*, expected"):
        dl.download(tmp_path / "bad", sources(server, mapping={"checksum": bad}), only=["mapping"], **FAST)
    with pytest.raises(GalaxyZooError, match=f"got {len(data)} bytes, expected {len(data) + 1}"):
        dl.download(tmp_path / "bad", sources(server, mapping={"size": len(data) + 1}), only=["mapping"], **FAST)
    assert list((tmp_path / "bad").iterdir()) == []


def test_not_enough_disk_space_is_refused_before_writing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 3})())
    with pytest.raises(GalaxyZooError, match="not enough disk space"):
        dl.download(tmp_path, sources(server), only=["mapping"], **FAST)
    assert list(tmp_path.iterdir()) == []


def test_mirror_and_per_file_urls():
    resolved = dl.resolve_sources(mirror="https://mirror.example/gz2/", urls={"images": "https://other/i.zip"})
    assert {n: s.url for n, s in resolved.items()} == {
        "hart16": "https://mirror.example/gz2/gz2_hart16.csv.gz",
        "mapping": "https://mirror.example/gz2/gz2_filename_mapping.csv",
        "images": "https://other/i.zip",
    }
    assert dl.resolve_sources() == dl.KNOWN_FILES
    with pytest.raises(GalaxyZooError, match="unknown file name"):
        dl.resolve_sources(urls={"catalogue": "https://x"})
    assert FILE_NAMES == tuple(dl.KNOWN_FILES)


def test_a_local_folder_serves_as_a_file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in release_files().items():
        (mirror / name).write_bytes(data)
    raw = tmp_path / "raw"
    dl.download(raw, dl.resolve_sources(mirror=mirror.as_uri()), **FAST)
    assert_raw_layout(raw)

    (mirror / "gz2_filename_mapping.csv").unlink()
    with pytest.raises(GalaxyZooError, match=f"could not download {mirror.as_uri()}/gz2_filename_mapping.csv: no such"):
        dl.download(tmp_path / "raw2", dl.resolve_sources(mirror=mirror.as_uri()), only=["mapping"], retries=3)


def test_cli_downloads_the_chosen_files(server, tmp_path, capsys):
    raw = tmp_path / "raw"
    rc = main(["download", "--out", str(raw), "--mirror", server.base, "--only", "hart16,mapping"])
    assert rc == 0
    assert sorted(p.name for p in raw.iterdir()) == [".download.json", "gz2_filename_mapping.csv", "gz2_hart16.csv"]
    assert [r["name"] for r in server.requests] == ["gz2_hart16.csv.gz", "gz2_filename_mapping.csv"]

    server.files["elsewhere.zip"] = server.files.pop("images_gz2.zip")
    rc = main(["download", "--out", str(raw), "--mirror", "http://127.0.0.1:9/unused",
               "--images-url", f"{server.base}/elsewhere.zip", "--keep-archives"])
    assert rc == 0
    assert_raw_layout(raw)
    assert (raw / "images_gz2.zip").exists()


def test_a_second_download_into_the_same_folder_is_refused_while_the_first_runs(server, tmp_path, capsys):
    """Two would share the .part files, and one's unpacking would empty the other's half-extracted images."""
    from galaxyzoo.system.locks import writer_lock

    raw = tmp_path / "raw"
    with writer_lock(raw):  # as a download that is still running holds it
        assert main(["download", "--out", str(raw), "--mirror", server.base, "--only", "images"]) == 2
    assert "is being written by another process" in capsys.readouterr().err
    assert server.requests == [] and not (raw / "images").exists()
    assert main(["download", "--out", str(raw), "--mirror", server.base, "--only", "images"]) == 0


def test_cli_error_is_one_line_with_exit_code_2(server, tmp_path, capsys):
    rc = main(["download", "--out", str(tmp_path), "--mirror", server.base, "--only", "mapping",
               "--mapping-url", f"{server.base}/missing.csv"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == f"galaxyzoo: error: could not download {server.base}/missing.csv: HTTP 404 Not Found\n"


def test_cli_rejects_unknown_file_names(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--out", "x", "--only", "hart16,catalogue"])
    assert exit_.value.code == 2
    assert "invalid file name(s) ['catalogue']" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--mirror", "notaurl"], "--mirror 'notaurl': not a URL; expected http://, https://, ftp:// or file://"),
    (["--mapping-url", "http://[::1"], "--mapping-url 'http://[::1': not a URL (Invalid IPv6 URL)"),
    (["--mapping-url", ""], "--mapping-url '': not a URL; expected http://, https://, ftp:// or file://"),
])
def test_a_bad_url_is_one_line_before_any_folder_is_made(tmp_path, capsys, args, message):
    out = tmp_path / "raw"
    assert main(["download", "--out", str(out), "--only", "mapping", *args]) == 2
    assert capsys.readouterr().err == f"galaxyzoo: error: {message}\n"
    assert not out.exists()


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for out in (blocker, blocker / "raw"):  # a file where the folder goes, and a path through a file
        assert main(["download", "--out", str(out), "--only", "mapping", "--mirror", "http://127.0.0.1:9"]) == 2
        err = capsys.readouterr().err
        assert err == f"galaxyzoo: error: {out}: {blocker} is a file, not a folder\n"


def test_a_path_too_long_for_the_file_system_is_one_line(tmp_path, capsys):
    out = tmp_path / ("a" * 300) / "raw"  # Path.exists() raises ENAMETOOLONG rather than answer
    assert main(["download", "--out", str(out), "--only", "mapping", "--mirror", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"galaxyzoo: error: {out}: cannot write there (") and err.count("\n") == 1


def test_an_empty_catalogue_file_in_place_is_refused(server, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "gz2_filename_mapping.csv").write_bytes(b"")  # an interrupted copy by hand
    with pytest.raises(GalaxyZooError, match=r"gz2_filename_mapping\.csv: is an empty file; move it aside"):
        dl.download(raw, sources(server), only=["mapping"], **FAST)
    (raw / "gz2_filename_mapping.csv").unlink()
    dl.download(raw, sources(server), only=["mapping"], **FAST)
    assert oct((raw / ".download.json").stat().st_mode & 0o777) == oct(0o644)  # others sharing RAW can read it
