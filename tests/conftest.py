"""Shared test helpers: compose the real configs (shrunk by experiment=smoke) and run them."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

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
