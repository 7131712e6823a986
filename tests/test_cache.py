"""tred/cache.py: a stage cache entry is computed once by concurrent callers; a run keeps its
entry as a hard link, a copy or a fresh file."""

from __future__ import annotations

import os
import threading
import time

import torch

from tred.cache import cache_path, cached, keep_entry, load_cached


def test_cache_entry_is_computed_once_by_concurrent_callers(tmp_path):
    calls, results = [], []

    def compute():
        calls.append(1)
        time.sleep(0.3)
        return torch.ones(2)

    threads = [threading.Thread(target=lambda: results.append(cached(tmp_path, "k", {"a": 1}, compute)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(hit for _, hit in results) == [False, True]
    assert all(torch.equal(v, torch.ones(2)) for v, _ in results)


def test_kept_entry_is_a_link_a_copy_or_a_fresh_file(tmp_path, monkeypatch):
    parts = {"a": 1}
    value, _ = cached(tmp_path / "cache", "k", parts, lambda: torch.arange(3))
    keep_entry(tmp_path / "cache", "k", parts, value, tmp_path / "linked.pt")
    assert os.path.samefile(tmp_path / "linked.pt", cache_path(tmp_path / "cache", "k", parts))

    def no_links(*_a):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    keep_entry(tmp_path / "cache", "k", parts, value, tmp_path / "copied.pt")
    assert not os.path.samefile(tmp_path / "copied.pt", cache_path(tmp_path / "cache", "k", parts))
    keep_entry(None, "k", parts, value, tmp_path / "fresh.pt")  # no cache directory
    for name in ("linked.pt", "copied.pt", "fresh.pt"):
        assert torch.equal(load_cached(tmp_path / name, parts), torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "copied.pt", "fresh.pt", "linked.pt"]
