"""Opt-in, verified, resumable download of the datasets that can still be fetched.

`fetch` appends to `<file>.part` from where an interrupted transfer stopped (HTTP Range, or a
seek for file:// URLs), checks the MD5 when one is known, and only then renames the file.
`install` fetches each file of a dataset, extracts the archives into the root and checks the
number of images (the verification for files without a published checksum). What each dataset
fetches (its `Source`) is in its record, tred/data/layouts.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from tred.errors import DataError

CHUNK = 1 << 20
# The files counted as images: by the check after a download and by the folder readers (tred.data.layouts).
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Remote:
    url: str
    md5: str | None = None  # None: no published checksum; the image count is checked instead

    @property
    def filename(self) -> str:
        return os.path.basename(urlparse(self.url).path)


@dataclass(frozen=True)
class Source:
    files: tuple = ()
    expected_images: int = 0
    manual: str = ""  # why there is no download and where to get the files
    notes: list = field(default_factory=list)


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _open_from(url: str, offset: int):
    """(stream, resumed): the bytes of `url` from `offset` on when the server allows it."""
    if urlparse(url).scheme == "file":
        f = open(urllib.request.url2pathname(urlparse(url).path), "rb")
        f.seek(offset)
        return f, True
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    resp = urllib.request.urlopen(req, timeout=60)  # noqa: S310 - URLs come from our table or the user
    return resp, offset > 0 and getattr(resp, "status", 200) == 206


def fetch(remote: Remote, dest_dir: Path) -> Path:
    """Download `remote` into `dest_dir` (resuming a partial file) and verify it; returns the path."""
    dest = Path(dest_dir) / remote.filename
    if dest.exists() and (remote.md5 is None or md5sum(dest) == remote.md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    try:
        stream, resumed = _open_from(remote.url, offset)
    except OSError as exc:
        raise DataError(f"cannot download {remote.url} ({exc}); fetch it by hand into {dest_dir}") from None
    length = getattr(stream, "headers", {}).get("Content-Length")
    with stream, open(part, "ab" if resumed else "wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
    expected = (offset if resumed else 0) + int(length) if length is not None else None
    if expected is not None and part.stat().st_size < expected:
        # HTTPResponse.read(n) returns short data on a dropped connection instead of raising.
        raise DataError(f"download of {remote.url} was interrupted at {part.stat().st_size} of {expected} "
                        f"bytes; run again to resume from {part}")
    if remote.md5 is not None:
        got = md5sum(part)
        if got != remote.md5:
            part.unlink()
            raise DataError(f"checksum mismatch for {remote.url}: md5 {got}, expected {remote.md5}; "
                            "the partial file was removed, run again to download it anew")
    part.replace(dest)
    return dest


def extract(archive: Path, into: Path) -> None:
    name = archive.name.lower()
    if name.endswith((".tar", ".tgz", ".tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)


def count_images(root: Path) -> int:
    return sum(f.lower().endswith(IMAGE_EXTS) for _, _, files in os.walk(root) for f in files)


def install(name: str, source: Source, root: Path) -> None:
    """Fetch, verify and extract dataset `name` into `root` (a no-op once it is complete)."""
    marker = root / ".tred_complete"
    if marker.exists():
        return
    if not source.files:
        raise DataError(f"dataset {name} cannot be downloaded automatically: {source.manual} "
                        f"Put the files in {root}")
    downloads = root / "downloads"
    for remote in source.files:
        path = fetch(remote, downloads)
        if path.name.lower().endswith((".tar", ".tgz", ".tar.gz", ".zip")):
            extract(path, root)
        else:
            shutil.copy2(path, root / path.name)
    n = count_images(root)
    if n < source.expected_images:
        raise DataError(f"dataset {name} in {root} has {n} images after extraction, expected "
                        f"{source.expected_images}: a download was truncated; delete {downloads} and retry")
    marker.write_text(f"{n} images\n")
