"""scripts/sweep_status.py on a generated sweep directory: exact counts, reasons and ETA."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("sweep_status", ROOT / "scripts" / "sweep_status.py")
sweep_status = importlib.util.module_from_spec(_spec)
sys.modules["sweep_status"] = sweep_status  # its dataclass looks its module up
_spec.loader.exec_module(sweep_status)

HOLDER = ("import sys, time\nfrom tred.runlock import RunLock\n"
          "with RunLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n")
ERROR = "NonFiniteLossError: non-finite loss at iteration 41: term(s) ['ce'] = [nan]"
HOUR_AGO = time.time() - 3600


def write_run(root, method, reg, seed, status=None, wall=None, extra=None, old=True, dataset="digits"):
    d = root / method / dataset / "sr1.0" / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {"seed": seed, "sweep_name": "s", "regularizer": {reg: {}}, "disentangle": None,
           "dataset": {"name": dataset, "sample_rate": 1.0}, **(extra or {})}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "metrics.csv").write_text("stage,iter,ce\nfinetune,25,2.0\n")
    if status:
        res = {"status": status, "method": method, "dataset": dataset, "seed": seed, "sample_rate": 1.0,
               "sweep": "s", "wall_time_s": wall, "test_acc": 50.0}
        if status == "failed":
            res.update(error=ERROR, test_acc=None)
        (d / "result.json").write_text(json.dumps(res))
    if old:
        for p in d.iterdir():
            os.utime(p, (HOUR_AGO, HOUR_AGO))
    return d


def multirun(root, params, task=()):
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"sweeper": {"params": params}, "overrides": {"task": list(task)}}}))


@pytest.fixture
def sweep(tmp_path):
    """method finetune,l2sp x seed 0,1,2 on digits: 6 declared runs."""
    root = tmp_path / "sweep"
    multirun(root, {"method": "finetune,l2sp", "seed": "0,1,2"}, ["dataset=digits", "experiment=x"])
    write_run(root, "l2", "l2", 0, "completed", 100.0)
    write_run(root, "l2", "l2", 1, "completed", 300.0)
    failed = write_run(root, "l2", "l2", 2, "failed", 5.0)
    (failed / ".hydra").mkdir()  # Hydra's copies are not run directories
    (failed / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 9}))
    running = write_run(root, "l2sp", "l2sp", 0)  # its lock is held below
    write_run(root, "l2sp", "l2sp", 1)  # interrupted: no result, nothing written for an hour
    # l2sp seed 2: not started
    return root, running


def hold(lock: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_counts_reasons_and_eta(sweep, capsys):
    root, running = sweep
    holder = hold(running / "run.lock")
    try:
        st = sweep_status.sweep_status(root, jobs=2)
        assert st.counts == {"completed": 2, "running": 1, "failed": 1, "interrupted": 1, "not started": 1}
        assert st.declared == 6 and st.remaining == 3
        assert st.failed == [("l2/digits/sr1.0/seed2", ERROR)]
        assert st.median_s == 200.0 and st.eta_s == 3 * 200.0 / 2
        assert sweep_status.main([str(root), "--jobs", "2"]) == 0
        # without --jobs or TRED_JOBS, the runs running now are the jobs: here 1
        assert sweep_status.sweep_status(root).jobs == 1
    finally:
        holder.kill()
        holder.wait()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{root}: 6 runs expected",
        "  completed       2",
        "  running         1",
        "  failed          1",
        "  interrupted     1  (no result, not running: run the sweep again to resume)",
        "  not started     1",
        "failed:",
        f"  l2/digits/sr1.0/seed2: {ERROR}",
        "ETA: 5m00s (3 remaining x median 200 s per completed run / 2 jobs)",
    ]
    # the lock is gone (its holder died): the run is interrupted; nothing runs, so 1 job
    st = sweep_status.sweep_status(root)
    assert st.counts["running"] == 0 and st.counts["interrupted"] == 2 and st.jobs == 1 and st.eta_s == 600.0


def test_recent_metrics_without_a_lock_is_running(sweep):
    """A run on another machine: no lock seen here, but its metrics.csv was just written."""
    root, running = sweep
    (running / "metrics.csv").touch()
    st = sweep_status.sweep_status(root, held=set())
    assert st.counts["running"] == 1 and st.counts["interrupted"] == 1
    assert sweep_status.sweep_status(root, held=set(), recent_s=0.0, now=time.time() + 60).counts["running"] == 0


def test_jobs_default_to_the_runs_running_now(sweep):
    """A parallel launcher keeps its n_jobs runs going: two running runs make the ETA half as long."""
    root, running = sweep
    for d in (running, running.parent / "seed1"):
        (d / "metrics.csv").touch()
    st = sweep_status.sweep_status(root, held=set())
    assert st.counts["running"] == 2 and st.jobs == 2 and st.eta_s == 3 * 200.0 / 2
    assert sweep_status.sweep_status(root, jobs=1, held=set()).eta_s == 3 * 200.0


def test_other_swept_keys_multiply_the_runs(tmp_path):
    """tune sweeps: method x weight_scale (values compared as numbers: 0.001 is 1e-3)."""
    root = tmp_path / "tune"
    multirun(root, {"method": "finetune,l2sp", "weight_scale": "0.001,0.01", "seed": "0"}, ["dataset=digits"])
    for method, scale, status in (("l2", 1e-3, "completed"), ("l2", 1e-2, "completed"), ("l2sp", 1e-3, "failed")):
        write_run(root / f"ws{scale}", method, method, 0, status, 60.0, extra={"weight_scale": scale})
    st = sweep_status.sweep_status(root, held=set())
    assert st.declared == 4
    assert st.counts == {"completed": 2, "running": 0, "failed": 1, "interrupted": 0, "not started": 1}
    assert st.eta_s == 60.0


def test_a_later_command_into_the_same_sweep_counts_the_earlier_runs(tmp_path):
    """A tuning's round beyond the edges: its command (one weight_scale, one method) rewrote
    multirun.yaml; the grid's runs on disk at other values still count, one each."""
    root = tmp_path / "tune"
    for scale in (0.1, 1.0, 10.0):
        for seed in (0, 1):
            write_run(root / f"ws{scale}", "l2", "l2", seed, "completed", 60.0, extra={"weight_scale": scale})
    multirun(root, {"method": "finetune", "weight_scale": "100.0", "seed": "0,1"}, ["dataset=digits"])
    write_run(root / "ws100.0", "l2", "l2", 0, "completed", 60.0, extra={"weight_scale": 100.0})
    st = sweep_status.sweep_status(root, held=set())
    assert st.declared == 8
    assert st.counts == {"completed": 7, "running": 0, "failed": 0, "interrupted": 0, "not started": 1}


def test_env_jobs_nothing_left_and_bad_input(tmp_path, monkeypatch, capsys):
    root = tmp_path / "done"
    multirun(root, {"seed": "0"}, ["dataset=digits", "regularizer=l2"])
    write_run(root, "l2", "l2", 0, "completed", 10.0)
    monkeypatch.setenv("TRED_JOBS", "4")
    assert sweep_status.main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 runs expected" in out and "ETA: nothing left to run" in out
    assert sweep_status.sweep_status(root).jobs == 1  # nothing running; main reads TRED_JOBS
    assert sweep_status.main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith(f"error: sweep directory {tmp_path / 'nope'} does not exist")
    (tmp_path / "empty").mkdir()
    assert sweep_status.main([str(tmp_path / "empty")]) == 2
    monkeypatch.setenv("TRED_JOBS", "many")
    assert sweep_status.main([str(root)]) == 2


def test_not_started_before_any_run_dir(tmp_path, capsys):
    root = tmp_path / "fresh"
    multirun(root, {"method": "finetune,l2sp,bss", "dataset": "digits,elpv", "seed": "0,1"})
    st = sweep_status.sweep_status(root, held=set())
    assert st.counts["not started"] == 12 and st.declared == 12 and st.eta_s is None
    sweep_status.main([str(root)])
    assert "ETA: unknown (12 remaining, no completed run to time yet)" in capsys.readouterr().out
