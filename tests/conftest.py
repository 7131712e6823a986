"""Shared test helpers: compose the real configs (shrunk by experiment=smoke) and run them."""

from __future__ import annotations

import logging
import os
import runpy
import sys
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from tred.kernels import pin  # noqa: E402

# The suite's process computes as a portable run does (trainer.kernels's default), so that runs
# made in this process may pin it; the kernel tests start their own processes for the other modes.
pin("portable")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tred.schema import register_resolvers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TRAIN = ROOT / "scripts" / "train.py"

torch.set_num_threads(min(2, torch.get_num_threads()))
register_resolvers()


def compose_cfg(overrides=(), smoke: bool = True) -> DictConfig:
    """The composed train config (hydra node removed), as scripts/train.py would see it."""
    ov = (["experiment=smoke"] if smoke else []) + list(overrides)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=ov)


# A smoke run of 3 iterations on 40 training images (10 test images per class), logged every step.
FAST = ["dataset.test_per_class=10", "trainer.max_iters=3", "trainer.log_every=1", "trainer.batch_size=4"]


def make_cfg(tmp_path: Path, overrides=(), regularizer=None) -> DictConfig:
    """A FAST smoke config caching under `tmp_path`; `regularizer` (a dict) replaces the regularizer group."""
    from omegaconf import open_dict

    cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", *FAST, *overrides])
    if regularizer is not None:
        with open_dict(cfg):
            cfg.regularizer = regularizer
    return cfg


def run_smoke(tmp_path: Path, overrides=()) -> dict:
    """Run one smoke config in `tmp_path / 'run'` (caches under tmp_path) and return result.json."""
    from tred.run import run

    cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", *overrides])
    return run(cfg, tmp_path / "run")


@pytest.fixture
def one_thread():
    """Small tensors: a second thread only adds synchronization (and stalls on a busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def smoke(tmp_path):
    return lambda *overrides: run_smoke(tmp_path, overrides)


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch, capsys):
    """`cli(*args)`: `python scripts/train.py *args`, run in this process: the script's own
    `__main__` path (its exit status, stdout and stderr) without a new interpreter and torch
    import per call (about 5 s each here). tests/test_train_script.py keeps real subprocesses
    for what only a process shows."""

    def call(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", [str(TRAIN), *args])
        monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # records the variable's state: restored after the test
        monkeypatch.delenv("HYDRA_FULL_ERROR")  # the script sets it (tred's one-line errors)
        root = logging.getLogger()
        handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
        capsys.readouterr()
        code = 0
        try:
            runpy.run_path(str(TRAIN), run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:  # Hydra's console handler writes to this call's captured stdout: drop it
            root.handlers[:] = handlers
            root.setLevel(level)
            torch.set_num_threads(threads)  # trainer.threads sets it for this process
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return call
