"""Launcher configs: `parallel` (joblib) splits the cores between jobs; `slurm_local` runs a real
sweep through submitit (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONFIGS

ROOT = Path(__file__).resolve().parents[1]


def hydra_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True).hydra


def test_launcher_configs_compose(monkeypatch):
    monkeypatch.setenv("TRED_JOBS", "3")
    monkeypatch.setenv("TRED_SLURM_PARTITION", "gpu")
    monkeypatch.delenv("TRED_SLURM_GPUS", raising=False)
    assert hydra_cfg("hydra/launcher=parallel").launcher.n_jobs == 3
    monkeypatch.delenv("TRED_JOBS")
    assert hydra_cfg("hydra/launcher=parallel").launcher.n_jobs == len(os.sched_getaffinity(0))  # one job per core
    slurm = hydra_cfg("hydra/launcher=slurm").launcher
    assert slurm.partition == "gpu" and slurm.gpus_per_task == 1 and slurm.account is None
    assert slurm._target_.endswith("SlurmLauncher")
    assert hydra_cfg("hydra/launcher=slurm_local").launcher._target_.endswith("LocalLauncher")


@pytest.mark.slow
def test_slurm_local_two_job_sweep(tmp_path):
    root = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "experiment=smoke",
           "hydra/launcher=slurm_local", "seed=0,1", "dataset.test_per_class=3",
           "trainer.max_iters=2", f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={root}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in root.rglob("result.json")]
    assert sorted(r["seed"] for r in results) == [0, 1]
    assert all(r["status"] == "completed" for r in results)
    assert list(root.glob(".submitit/*"))  # the jobs really went through submitit


@pytest.mark.slow
def test_slurm_local_requeue_resumes_from_the_stop_checkpoint(tmp_path):
    """SIGUSR2 (pre-emption / time limit) to a running submitit job: the run checkpoints at the end
    of its step, submitit requeues the job, and the requeued job resumes there and completes."""
    import signal
    import time

    root = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "experiment=smoke",
           "hydra/launcher=slurm_local", "trainer.max_iters=600", "trainer.checkpoint_every=0",
           "trainer.log_every=10", f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={root}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    sweep = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    job = log = None
    while time.monotonic() < deadline and job is None:  # the job is running once its log shows iterations
        time.sleep(0.5)
        log = next(iter(root.rglob("train.log")), None)
        if log is not None and "iter 20/600" in log.read_text():
            out = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True)
            job = int(out.stdout.split()[0]) if out.stdout.split() else None
    assert job is not None, "the submitit job did not start"
    os.kill(job, signal.SIGUSR2)
    out, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, out[-3000:]
    result = json.loads(next(root.rglob("result.json")).read_text())
    assert result["status"] == "completed" and result["iters"] == 600
    text = log.read_text()
    resumed = int(text.split("resumed from checkpoint.pt at iteration ")[1].split()[0])
    assert 20 <= resumed < 600  # checkpoint_every=0: only the stop checkpoint can give this
