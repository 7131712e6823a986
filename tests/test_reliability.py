"""Checkpoint / resume, honest status, bad input and locks (issue 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from omegaconf import open_dict

from conftest import ROOT, TRAIN, compose_cfg
from tred.errors import ConfigError
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


def test_unknown_layer_lists_valid_ones(tmp_path, methods):
    with pytest.raises(ConfigError, match=r"unknown layer name\(s\) \['blocks.99'\].*valid names include: .*'blocks.6'"):
        run(make_cfg(tmp_path, regularizer={"taps": {}}), tmp_path / "run")


def test_train_script_bad_input_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(TRAIN), "experiment=smoke", "trainer.max_iters=0",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: trainer.max_iters must be > 0, got 0"]
