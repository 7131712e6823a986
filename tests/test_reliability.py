"""Checkpoint / resume, honest status, bad input and locks (issue 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import torch
from omegaconf import open_dict

from conftest import ROOT, TRAIN, compose_cfg
from tred.cache import cached
from tred.config import check_nonnegative
from tred.errors import ConfigError
from tred.engine.checkpoint import CHECKPOINT
from tred.io import read_json
from tred.regularizers import REGISTRY, Regularizer
from tred.run import run

FAST = ["dataset.test_per_class=10", "trainer.max_iters=3", "trainer.log_every=1", "trainer.batch_size=4"]


class Taps(Regularizer):
    name = "taps"
    source_layers = ("blocks.99",)

    @dataclass
    class Config:
        pass


@pytest.fixture
def methods(monkeypatch):
    monkeypatch.setitem(REGISTRY, Taps.name, Taps)


def make_cfg(tmp_path, overrides=(), regularizer=None):
    cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", *FAST, *overrides])
    if regularizer is not None:
        with open_dict(cfg):
            cfg.regularizer = regularizer
    return cfg


def test_completed_run_is_skipped_and_checkpoint_removed(tmp_path):
    cfg = make_cfg(tmp_path, ["trainer.max_iters=1"])
    first = run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / CHECKPOINT).exists()  # keep_checkpoint=false by default
    again = run(cfg, tmp_path / "run")
    assert again["skipped"] and again["test_acc"] == first["test_acc"]
    with pytest.raises(ConfigError, match=r"completed run of a different config \(trainer.lr: 0.01 -> 0.02\)"):
        run(make_cfg(tmp_path, ["trainer.max_iters=1", "trainer.lr=0.02"]), tmp_path / "run")


@pytest.mark.parametrize("override, message", [
    ("regularizer.l2.weight_decay=-1e-4", r"regularizer.l2.weight_decay must be >= 0"),
    ("trainer.max_iters=0", r"trainer.max_iters must be > 0, got 0"),
    ("dataset.image_size=16", r"image_size=16 is too small for backbone efficientnet_lite0: use at least 32"),
    ("trainer.checkpoint_every=-1", r"checkpoint_every must be >= 0"),
])
def test_bad_config_values(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(make_cfg(tmp_path, [override]), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before any work


def test_negative_weights_checked_by_name():
    from omegaconf import OmegaConf
    ok = OmegaConf.create({"alpha": 0.0, "beta": 1, "rec_weight": 2.0, "k": -1, "inner": {"eta": 0.1}})
    check_nonnegative(ok, "regularizer.x")
    for bad in ({"alpha": -0.1}, {"inner": {"mmd_weight": -1}}, {"weights": -2}):
        with pytest.raises(ConfigError, match="must be >= 0"):
            check_nonnegative(OmegaConf.create(bad), "regularizer.x")


def test_batch_larger_than_train_set(tmp_path):
    with pytest.raises(ConfigError, match=r"batch_size=41 is larger than the training set \(40 images"):
        run(make_cfg(tmp_path, ["trainer.batch_size=41"]), tmp_path / "run")


def test_unknown_layer_lists_valid_ones(tmp_path, methods):
    with pytest.raises(ConfigError, match=r"unknown layer name\(s\) \['blocks.99'\].*valid names include: .*'blocks.6'"):
        run(make_cfg(tmp_path, regularizer={"taps": {}}), tmp_path / "run")


def test_train_script_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(TRAIN), "experiment=smoke", "trainer.max_iters=0",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: trainer.max_iters must be > 0, got 0"]


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
    import os

    from tred.cache import cache_path, keep_entry, load_cached

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


WRITER = ("import os, signal, sys\nfrom tred.io import atomic_write\n"
          "def write(fh):\n"
          "    if sys.argv[2] == 'after': fh.write('{\"status\": \"completed\"}')\n"
          "    os.kill(os.getpid(), signal.SIGTERM)  # default action: the process dies at once\n"
          "    if sys.argv[2] == 'before': fh.write('{\"status\": \"completed\"}')\n"
          "atomic_write(sys.argv[1], write)\nprint('unreachable')\n")


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigterm_during_an_atomic_write_leaves_no_temp_file(tmp_path, when):
    """A kill (SIGTERM, default action) inside the final write left a 0-byte .result.json.*.tmp;
    now the signal waits for the write to end, then takes effect: whole file, no temp file."""
    target = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(target), when], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == -signal.SIGTERM and "unreachable" not in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert read_json(target) == {"status": "completed"}


def test_failed_atomic_write_removes_its_temp_file_and_keeps_the_old_file(tmp_path):
    from tred.io import atomic_write, write_json

    write_json(tmp_path / "result.json", {"v": 1})
    fds = len(os.listdir("/proc/self/fd"))

    def boom(fh):
        fh.write("{half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "result.json", boom)
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "result.json", boom, mode="not-a-mode")  # os.fdopen fails: fd closed too
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"] and read_json(tmp_path / "result.json") == {"v": 1}
    assert len(os.listdir("/proc/self/fd")) == fds  # no descriptor leaked
