"""Checkpoint / resume, honest status, bad input and locks (issue 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from omegaconf import open_dict

from conftest import ROOT, TRAIN, compose_cfg
from tred.config import check_nonnegative
from tred.errors import ConfigError
from tred.engine.checkpoint import CHECKPOINT
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
