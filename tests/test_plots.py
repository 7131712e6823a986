"""tred/plots.py: every figure a sweep calls for is written as a readable PNG."""

from __future__ import annotations

import matplotlib.image as mpimg

from tests.fake_runs import rates_sweep

from tred.plots import all_plots
from tred.tables.table import build_table


def test_all_plots_of_a_sweep(tmp_path):
    """Two sample rates (accuracy vs rate), fine-tuning (paired differences), TRED runs with
    stage-1 curves in metrics.csv and stage-1 checks in result.json; no train_acc column, so no
    training curves."""
    root = rates_sweep(tmp_path / "sweep")
    paths = all_plots(build_table(root), root, root / "plots")
    assert sorted(p.name for p in paths) == sorted(f"{name}.png" for name in (
        "accuracy_per_method", "accuracy_vs_sample_rate", "paired_difference_vs_finetune", "stage1_checks",
        "stage1_tred-max_mmd"))
    for p in paths:
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100
