"""scripts/config_snapshot.py sees a change of run identity (so an empty diff means something)."""

from __future__ import annotations

import shutil
import sys

from conftest import CONFIGS, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from config_snapshot import snapshot, sweep_jobs  # noqa: E402


def test_sweep_jobs_are_the_cartesian_product():
    jobs = sweep_jobs({"method": "l2sp,bss", "seed": "0,1,2"})
    assert len(jobs) == 6 and jobs[0] == ["method=l2sp", "seed=0"] and jobs[-1] == ["method=bss", "seed=2"]
    assert sweep_jobs({"method": "l2sp,bss", "seed": "0,1,2"}, one_seed=True) == [["method=l2sp", "seed=0"],
                                                                                 ["method=bss", "seed=0"]]


def test_a_changed_default_and_a_changed_run_directory_show(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (before,) = snapshot(configs, ["tune_delta_alpha"], one_seed=True).values()
    assert "delta/elpv/sr1.0/seed0/regularizer.delta.alpha=0.01" in before and len(before) == 12
    smoke = configs / "experiment" / "tune_delta_alpha.yaml"
    smoke.write_text(smoke.read_text().replace("1e-2,1e-3", "1e-1,1e-3") + "trainer:\n  lr: 0.02\n")
    (after,) = snapshot(configs, ["tune_delta_alpha"], one_seed=True).values()
    assert set(before) - set(after) == {f"delta/{d}/sr1.0/seed0/regularizer.delta.alpha=0.01"
                                        for d in ("elpv", "mnist5k", "digits")}
    same = "delta/digits/sr1.0/seed0/regularizer.delta.alpha=0.001"
    assert before[same]["trainer"]["lr"] == 0.01 and after[same]["trainer"]["lr"] == 0.02
