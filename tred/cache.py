"""Stage caches (DELTA channel attention, TRED disentangler) shared by the runs of a sweep.

An entry is keyed by a hash of everything that determines it (passed in as a dict), written
atomically, and carries its key inside, so a stale or half-written file is never read. A
process that misses takes `<entry>.lock` before computing, so a second process wanting the
same entry at the same time waits for the first and then reads its result.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tred.io import atomic_write
from tred.runlock import RunLock

log = logging.getLogger(__name__)


def cache_key(parts: dict) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(cache_dir: str | Path, kind: str, parts: dict) -> Path:
    return Path(cache_dir) / kind / f"{cache_key(parts)}.pt"


def load_cached(path: Path, parts: dict) -> Any | None:
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated or foreign file: recompute
        log.warning("ignoring unreadable cache %s (%s)", path, exc)
        return None
    if not isinstance(entry, dict) or entry.get("key") != json.loads(json.dumps(parts, default=str)):
        return None
    return entry["value"]


def save_cached(path: Path, parts: dict, value: Any) -> None:
    buf = io.BytesIO()
    torch.save({"key": json.loads(json.dumps(parts, default=str)), "value": value}, buf)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), mode="wb")


def cached(cache_dir: str | Path | None, kind: str, parts: dict, compute: Callable[[], Any]) -> tuple[Any, bool]:
    """`(value, hit)`: the cached value for `parts`, or `compute()` stored for next time."""
    if cache_dir is None:
        return compute(), False
    path = cache_path(cache_dir, kind, parts)
    value = load_cached(path, parts)
    if value is not None:
        return value, True
    with RunLock(path.with_suffix(".lock"), wait_s=-1, what="cache entry"):
        value = load_cached(path, parts)  # another process may have just computed it
        if value is not None:
            return value, True
        value = compute()
        save_cached(path, parts, value)
    return value, False


def keep_entry(cache_dir: str | Path | None, kind: str, parts: dict, value: Any, dest: Path) -> None:
    """Put the cache entry for `parts` at `dest` (a run's own record of it): a hard link to the
    cache file when possible (no second copy on disk; it survives the cache being cleared),
    else a copy; without a cache directory, `value` is written there in the same format."""
    dest = Path(dest)
    src = cache_path(cache_dir, kind, parts) if cache_dir is not None else None
    if src is None or not src.is_file():
        save_cached(dest, parts, value)
        return
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not supported
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
