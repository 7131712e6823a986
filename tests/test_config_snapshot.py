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


SWEEP = """# @package _global_
defaults:
  - flowers_base
sweep_name: snapshot_check
hydra:
  sweeper:
    params:
      method: delta,tred_projection
      weight_scale: 0.001,0.01
      seed: 0
"""


def test_a_changed_default_and_a_changed_run_directory_show(tmp_path):
    """On a copy of configs/ with a small sweep of the Flowers-102 regime (4 jobs)."""
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    tune = configs / "experiment" / "snapshot_check.yaml"
    tune.write_text(SWEEP)
    (before,) = snapshot(configs, ["snapshot_check"], one_seed=True).values()
    assert "delta/flowers102/sr0.25/seed0/weight_scale=0.001" in before and len(before) == 4
    tune.write_text(tune.read_text().replace("0.001,0.01", "0.002,0.01") + "trainer:\n  lr: 0.02\n")
    (after,) = snapshot(configs, ["snapshot_check"], one_seed=True).values()
    assert set(before) - set(after) == {f"{m}/flowers102/sr0.25/seed0/weight_scale=0.001"
                                        for m in ("delta", "tred-projection")}
    same = "delta/flowers102/sr0.25/seed0/weight_scale=0.01"
    assert before[same]["trainer"]["lr"] == 0.01 and after[same]["trainer"]["lr"] == 0.02
