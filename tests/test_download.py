"""Download: checksum verified, bad checksum rejected, interrupted transfer resumed (loopback only)."""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading

import pytest

import fake_trees
from tred.data.download import Remote, Source, fetch, install
from tred.errors import DataError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves bytes from `files` and honours `Range: bytes=N-`; `cut` ends the first reply early."""

    files: dict = {}
    cut: dict = {}
    ranges: list = []

    def do_GET(self):  # noqa: N802
        body = self.files[self.path]
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.ranges.append(start)
        part = body[start:]
        limit = self.cut.pop(self.path, None)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part[:limit] if limit is not None else part)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    RangeHandler.files, RangeHandler.cut, RangeHandler.ranges = {}, {}, []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_file_url_checksum_ok_and_bad(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 100)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    got = fetch(Remote(src.as_uri(), md5), tmp_path / "dl")
    assert got.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(Remote(src.as_uri(), "0" * 32), tmp_path / "dl2")
    assert not list((tmp_path / "dl2").iterdir())  # neither a final nor a partial file is left


def test_interrupted_http_download_resumes(tmp_path, server):
    body = bytes(range(256)) * 1000
    RangeHandler.files["/data.tar"] = body
    RangeHandler.cut["/data.tar"] = 100_000  # the first transfer stops early
    remote = Remote(f"{server}/data.tar", hashlib.md5(body).hexdigest())
    with pytest.raises(DataError, match="interrupted at 100000 of 256000 bytes"):
        fetch(remote, tmp_path)  # the connection ends before Content-Length
    assert (tmp_path / "data.tar.part").stat().st_size == 100_000
    fetch(remote, tmp_path)
    assert RangeHandler.ranges == [0, 100_000]
    assert (tmp_path / "data.tar").read_bytes() == body and not (tmp_path / "data.tar.part").exists()


def test_file_url_resumes_from_partial_file(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"abcdefghij" * 1000)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "blob.bin.part").write_bytes(b"abcdefghij" * 300)  # an earlier, cut transfer
    fetch(Remote(src.as_uri(), hashlib.md5(src.read_bytes()).hexdigest()), tmp_path / "dl")
    assert (tmp_path / "dl" / "blob.bin").read_bytes() == src.read_bytes()


def test_install_extracts_and_counts_images(tmp_path):
    tree = tmp_path / "tree"
    fake_trees.cub200(tree)  # 3 classes x 7 images
    archive = tmp_path / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "CUB_200_2011", arcname="CUB_200_2011")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "root"
    with pytest.raises(DataError, match="21 images after extraction, expected 22"):
        install("cub200", Source((Remote(archive.as_uri(), md5),), 22), root)
    install("cub200", Source((Remote(archive.as_uri(), md5),), 21), root)
    assert (root / "CUB_200_2011" / "images.txt").exists() and (root / ".tred_complete").exists()


def test_manual_dataset_names_what_to_fetch(tmp_path):
    from tred.data.layouts import DATASETS

    with pytest.raises(DataError, match="cars_train.tgz.*" + str(tmp_path)):
        install("stanford_cars", DATASETS["stanford_cars"].source, tmp_path)
