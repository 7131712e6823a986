"""Checkpoints (tred/engine/checkpoint.py) and resuming a run from them (tred/run.py): bit-exact
after SIGTERM and kill, the run's time carried across attempts, a killed checkpoint write, a
checkpoint of another config, config_diff."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, TRAIN, make_cfg
from tred.cache import cached
from tred.config import validate
from tred.engine.checkpoint import CHECKPOINT, Checkpointer, config_diff
from tred.engine.loop import Finetuner
from tred.errors import ConfigError
from tred.regularizers import REGISTRY, Regularizer
from tred.run import run
from tred.runlock import RunInterrupted

STAGE1_CALLS: list[int] = []


class Staged(Regularizer):
    """Test method with a cached stage 1 (counts its computations) and no penalty."""

    name = "staged"

    @dataclass
    class Config:
        weight: float = 0.0

    def setup(self, ctx):
        def compute():
            STAGE1_CALLS.append(1)
            return torch.arange(3.0)
        self.reference, hit = cached(ctx.cache_dir, "staged", {"seed": ctx.seed}, compute)
        return {"staged_hit": hit}

    def state_dict(self):
        return {"reference": self.reference}


@pytest.fixture
def staged(monkeypatch):
    monkeypatch.setitem(REGISTRY, Staged.name, Staged)
    STAGE1_CALLS.clear()


class Killed(KeyboardInterrupt):
    """Stands for SIGKILL: nothing after it runs (no checkpoint, no result)."""


def kill():
    raise Killed()


def interrupt_after_step(monkeypatch, at: int, action):
    original = Finetuner.step

    def step(self, x, y):
        out = original(self, x, y)
        if self.iteration == at:
            action()
        return out
    monkeypatch.setattr(Finetuner, "step", step)


def rows(path):
    with open(path) as fh:
        return [{k: v for k, v in r.items() if k != "imgs_per_s"} for r in csv.DictReader(fh)]


def saved_iteration(run_dir):
    return torch.load(run_dir / CHECKPOINT, weights_only=False)["iteration"]


def test_resume_after_sigterm_and_kill_is_bit_exact(tmp_path, staged, monkeypatch):
    regs = {"l2": {"weight_decay": 1e-4}, "staged": {}}
    over = ["trainer.checkpoint_every=2", "trainer.keep_checkpoint=true"]
    ref = run(make_cfg(tmp_path / "a", over, regs), tmp_path / "a" / "run")
    assert STAGE1_CALLS == [1]

    cfg, run_dir = make_cfg(tmp_path / "b", over, regs), tmp_path / "b" / "run"
    with monkeypatch.context() as m:  # SIGTERM during step 1: checkpoint at 1 (not a periodic one)
        interrupt_after_step(m, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(RunInterrupted, match="SIGTERM at iteration 1"):
            run(cfg, run_dir)
    assert not (run_dir / "result.json").exists() and saved_iteration(run_dir) == 1
    with monkeypatch.context() as m:  # "SIGKILL" after step 3, before its checkpoint: resume point 2
        interrupt_after_step(m, 3, kill)
        with pytest.raises(Killed):
            run(cfg, run_dir)
    assert not (run_dir / "result.json").exists() and saved_iteration(run_dir) == 2
    before = torch.load(run_dir / CHECKPOINT, weights_only=False)["trainer"]["model"]
    out = run(cfg, run_dir)

    assert STAGE1_CALLS == [1, 1]  # run b computed stage 1 once; both resumes hit the cache
    assert out["status"] == "completed" and out["test_acc"] == ref["test_acc"]
    assert out["test_loss"] == ref["test_loss"] and out["staged_hit"] is False
    a = torch.load(tmp_path / "a" / "run" / CHECKPOINT, weights_only=False)
    b = torch.load(run_dir / CHECKPOINT, weights_only=False)
    assert a["iteration"] == b["iteration"] == 3
    for k, v in a["trainer"]["model"].items():
        assert torch.equal(v, b["trainer"]["model"][k]), k
    assert any(not torch.equal(v, before[k]) for k, v in a["trainer"]["model"].items())
    assert a["trainer"]["optimizer"]["param_groups"] == b["trainer"]["optimizer"]["param_groups"]
    assert rows(run_dir / "metrics.csv") == rows(tmp_path / "a" / "run" / "metrics.csv")
    assert [r["iter"] for r in rows(run_dir / "metrics.csv")] == ["1", "2", "3", "3"]


def stopped_at_step_2(tmp_path, monkeypatch):
    """An L2 run stopped by SIGTERM after step 2: its config, directory and checkpoint."""
    cfg, run_dir = make_cfg(tmp_path, ["trainer.checkpoint_every=2"], {"l2": {"weight_decay": 1e-4}}), tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_after_step(m, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(RunInterrupted):
            run(cfg, run_dir)
    return cfg, run_dir, torch.load(run_dir / CHECKPOINT, weights_only=False)


def test_a_resumed_run_counts_the_earlier_attempts_time(tmp_path, monkeypatch):
    """wall_time_s / finetune_time_s of a resumed run = the earlier attempts' time up to the
    checkpoint it resumed from (carried in the checkpoint) + its own; `attempts` counts them."""
    cfg, run_dir, state = stopped_at_step_2(tmp_path, monkeypatch)
    assert state["attempts"] == 1 and state["iteration"] == 2
    assert 0 < state["trainer"]["finetune_time_s"] <= state["wall_time_s"]
    # Make the first attempt's carried time unmistakable: 1000 s of wall, 600 s of fine-tuning.
    state["wall_time_s"], state["trainer"]["finetune_time_s"] = 1000.0, 600.0
    torch.save(state, run_dir / CHECKPOINT)
    out = run(cfg, run_dir)
    assert out["status"] == "completed" and out["attempts"] == 2
    assert 1000.0 < out["wall_time_s"] < 1000.0 + 300 and 600.0 < out["finetune_time_s"] < 600.0 + 300
    fresh = run(make_cfg(tmp_path / "b", [], {"l2": {"weight_decay": 1e-4}}), tmp_path / "b" / "run")
    assert fresh["attempts"] == 1 and 0 < fresh["finetune_time_s"] < fresh["wall_time_s"] < 300


def test_a_checkpoint_without_the_clock_resumes_counting_from_zero(tmp_path, monkeypatch):
    """Checkpoints written before the time was carried (no wall_time_s / attempts) still resume."""
    cfg, run_dir, state = stopped_at_step_2(tmp_path, monkeypatch)
    for key in ("wall_time_s", "attempts"):
        del state[key]
    del state["trainer"]["finetune_time_s"]
    torch.save(state, run_dir / CHECKPOINT)
    out = run(cfg, run_dir)
    assert out["status"] == "completed" and out["attempts"] == 2 and 0 < out["wall_time_s"] < 300


class FakeTrainer:
    def __init__(self, iteration, value):
        self.iteration, self.value = iteration, value

    def state_dict(self):
        return {"w": torch.full((4,), float(self.value))}


class Rows:
    rows = [{"iter": 1}]


def test_killed_checkpoint_write_leaves_previous_usable(tmp_path):
    config = {"seed": 0, "trainer": {"lr": 0.1}}
    Checkpointer(tmp_path, config, 1, 10).save(FakeTrainer(5, 5), Rows(), {"a": 1})
    writer = (
        "import sys, time\nfrom tred.io import atomic_write\n"
        "def slow(fh):\n    fh.write(b'x' * 4096); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
        f"atomic_write({str(tmp_path / CHECKPOINT)!r}, slow, mode='wb')\n")
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    assert len(list(tmp_path.glob(f".{CHECKPOINT}.*.tmp"))) == 1  # the half-written file
    state = Checkpointer(tmp_path, config, 1, 10).load()
    assert state["iteration"] == 5 and torch.equal(state["trainer"]["w"], torch.full((4,), 5.0))
    assert not list(tmp_path.glob(f".{CHECKPOINT}.*.tmp"))


def test_checkpoint_from_other_config_is_refused(tmp_path):
    cfg = make_cfg(tmp_path, ["trainer.batch_size=41"])
    other = validate(make_cfg(tmp_path, ["trainer.batch_size=41", "trainer.lr=0.02", "trainer.checkpoint_every=7"]))
    torch.save({"config": OmegaConf.to_container(other, resolve=True)}, tmp_path / CHECKPOINT)
    with pytest.raises(ConfigError, match=r"different config \(trainer.lr: 0.02 -> 0.01\); refusing"):
        run(cfg, tmp_path)
    # resume=never starts over: the checkpoint goes, and the next error is the batch size
    with pytest.raises(ConfigError, match=r"batch_size=41 is larger than the training set \(40 images"):
        run(make_cfg(tmp_path, ["trainer.batch_size=41", "resume=never"]), tmp_path)
    assert not (tmp_path / CHECKPOINT).exists()


def test_config_diff_ignores_operational_keys():
    old = {"seed": 0, "resume": "auto", "trainer": {"lr": 0.1, "checkpoint_every": 5, "device": "cpu"}}
    new = {"seed": 1, "resume": "never", "trainer": {"lr": 0.1, "checkpoint_every": 9, "device": "cuda"}, "x": 2}
    assert config_diff(old, new) == ["seed: 0 -> 1", "x: '<unset>' -> 2"]


def test_a_setting_added_later_with_its_default_is_no_difference():
    old = {"seed": 0, "dataset": {"name": "digits", "sample_rate": 1.0}}
    new = {"seed": 0, "dataset": {"name": "digits", "sample_rate": 1.0, "validation": False}}
    assert config_diff(old, new) == []
    changed = {"seed": 0, "dataset": {"name": "digits", "sample_rate": 1.0, "validation": True}}
    assert config_diff(old, changed) == ["dataset.validation: '<unset>' -> True"]


def test_a_run_from_before_the_kernel_mode_is_another_config():
    """Runs made before trainer.kernels existed computed natively: the portable default must not
    skip them as complete, nor resume their checkpoints."""
    old = {"seed": 0, "trainer": {"lr": 0.1}}
    assert config_diff(old, {"seed": 0, "trainer": {"lr": 0.1, "kernels": "portable"}}) == [
        "trainer.kernels: '<unset>' -> 'portable'"]


# ------------------------------------------------- a real scripts/train.py, SIGKILLed, resumed
ARGS = ["experiment=smoke", "dataset.test_per_class=10", "trainer.max_iters=30", "trainer.log_every=1",
        "trainer.checkpoint_every=1", "trainer.keep_checkpoint=true", "trainer.threads=1"]


def command(tmp_path, run_dir):
    return [sys.executable, str(TRAIN), *ARGS, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    start = time.monotonic()
    subprocess.run(command(tmp_path, ref_dir), env=env(), check=True, capture_output=True)
    full = time.monotonic() - start  # kill times scale with this machine's speed
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(command(tmp_path, run_dir), env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.3, 0.6) * full)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no handler runs, nothing is flushed
            proc.wait()
            kills += 1
            assert not (run_dir / "result.json").exists()
            continue
        assert proc.returncode == 0
        break
    assert kills >= 2, "the run finished too early to test anything; raise max_iters"
    subprocess.run(command(tmp_path, run_dir), env=env(), check=True, capture_output=True)

    ref = torch.load(ref_dir / "checkpoint.pt", weights_only=False)
    got = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert got["iteration"] == ref["iteration"] == 30
    for k, v in ref["trainer"]["model"].items():
        assert torch.equal(v, got["trainer"]["model"][k]), k
    a = json.loads((ref_dir / "result.json").read_text())
    b = json.loads((run_dir / "result.json").read_text())
    assert b["status"] == "completed" and b["test_acc"] == a["test_acc"] and b["test_loss"] == a["test_loss"]
    assert rows(run_dir / "metrics.csv") == rows(ref_dir / "metrics.csv")


def test_a_table_run_adopts_the_tuning_run_that_trained_it(tmp_path):
    """reuse_from: a table run whose training a tuning run already did (held-out images of the
    training split for scoring, weight_scale, kept final checkpoint) is only evaluated, and scores
    exactly what training it again scores; one of other weights or other training images trains."""
    subset = ["dataset.sample_rate=0.5", "trainer.max_iters=4"]
    tune = tmp_path / "tune"
    for scale in (0.1, 1.0):
        tuned = run(make_cfg(tmp_path, [*subset, "dataset.validation=true", "dataset.val_pool=unused",
                                        "trainer.keep_checkpoint=true", f"weight_scale={scale}", "sweep_name=tune"]),
                    tune / f"weight_scale={scale}")
        assert tuned["eval_split"] == "val" and (tune / f"weight_scale={scale}" / CHECKPOINT).is_file()
    # the value a tuned file writes: the weight the tuning run used
    decay = OmegaConf.load(tune / "weight_scale=0.1" / "config.yaml").regularizer.l2.weight_decay
    table = [*subset, f"regularizer.l2.weight_decay={decay}", "sweep_name=table"]
    fresh = run(make_cfg(tmp_path, table), tmp_path / "fresh")
    adopted = run(make_cfg(tmp_path, [*table, f"reuse_from={tune}"]), tmp_path / "adopted")
    assert adopted["trained_in"] == "tune/weight_scale=0.1" and "trained_in" not in fresh
    assert adopted["eval_split"] == "test" and adopted["test_size"] == fresh["test_size"] != tuned["test_size"]
    assert (adopted["test_acc"], adopted["test_loss"]) == (fresh["test_acc"], fresh["test_loss"])
    rows = lambda d: [r for r in csv.DictReader(open(d / "metrics.csv")) if r["stage"] == "finetune"]  # noqa: E731
    assert [(r["iter"], r["loss"]) for r in rows(tmp_path / "adopted")] == [(r["iter"], r["loss"])
                                                                            for r in rows(tmp_path / "fresh")]
    assert adopted["wall_time_s"] >= adopted["trained_time_s"] > 0 and adopted["attempts"] == 2
    assert not (tmp_path / "adopted" / CHECKPOINT).exists()  # the table run keeps none; the tuning's stays
    assert (tune / "weight_scale=0.1" / CHECKPOINT).is_file()
    # another weight: no tuning run trained it
    other = run(make_cfg(tmp_path, [*subset, "sweep_name=table", "regularizer.l2.weight_decay=0.5",
                                    f"reuse_from={tune}"]), tmp_path / "other")
    assert "trained_in" not in other and other["attempts"] == 1
    # the same config but other training images (validation on a held-out part of the subset)
    held = tmp_path / "held"
    run(make_cfg(tmp_path, [*subset, "dataset.validation=true", "dataset.val_pool=subset",
                            "trainer.keep_checkpoint=true", "weight_scale=0.1", "sweep_name=tune"]), held / "run")
    again = run(make_cfg(tmp_path, [*table, f"reuse_from={held}"]), tmp_path / "again")
    assert "trained_in" not in again
    assert (again["test_acc"], again["test_loss"]) == (fresh["test_acc"], fresh["test_loss"])


def test_an_adopted_tred_run_scores_what_training_it_again_scores(tmp_path):
    """TRED: stage 1 is computed again for the table's split (its diagnostics are the table's),
    the fine-tuning comes from the tuning run, and the result equals a fresh table run's."""
    subset = ["dataset.sample_rate=0.5", "trainer.max_iters=4", "regularizer=tred"]
    tune = tmp_path / "tune"
    run(make_cfg(tmp_path, [*subset, "dataset.validation=true", "dataset.val_pool=unused",
                            "trainer.keep_checkpoint=true", "weight_scale=0.1", "sweep_name=tune"]), tune / "run")
    alpha = OmegaConf.load(tune / "run" / "config.yaml").regularizer.tred.alpha
    table = [*subset, f"regularizer.tred.alpha={alpha}", "sweep_name=table"]
    fresh = run(make_cfg(tmp_path, table), tmp_path / "fresh")
    adopted = run(make_cfg(tmp_path, [*table, f"reuse_from={tune}"]), tmp_path / "adopted")
    assert adopted["trained_in"] == "tune/run"
    same = [k for k in fresh if (k.startswith(("test_", "disentangle")) or k in ("test_size", "train_size"))
            and k != "disentangle_cache_hit"]  # the fresh run filled the stage cache the adopted one reads
    assert same and {k: adopted[k] for k in same} == {k: fresh[k] for k in same}
