"""A real scripts/train.py killed with SIGKILL at random moments, again and again, then resumed."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TRAIN

ARGS = ["experiment=smoke", "dataset.test_per_class=10", "trainer.max_iters=30", "trainer.log_every=1",
        "trainer.checkpoint_every=1", "trainer.keep_checkpoint=true", "trainer.threads=1"]


def command(tmp_path, run_dir):
    return [sys.executable, str(TRAIN), *ARGS, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def rows(path):
    with open(path) as fh:
        return [{k: v for k, v in r.items() if k != "imgs_per_s"} for r in csv.DictReader(fh)]


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
