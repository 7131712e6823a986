"""tred/plots.py: every figure a sweep calls for is written as a readable PNG."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from tests.fake_runs import STAGE1_CHECKS, rates_sweep, write_run
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


def test_nothing_is_cut_at_the_edges(tmp_path):
    """One column and the longest row labels (the case that cut the paired-difference figure's
    title and axis label at its right edge): every figure keeps a blank margin on all four sides,
    so no title, label or legend runs off the image."""
    root = tmp_path / "sweep"
    tred = {"tred": {"alpha": 1e-4}}
    for seed in (0, 1):
        write_run(root, "l2", "flowers102", seed, 70.0 + seed)
        for i, method in enumerate(("tred-mask-max_mmd_min_mi", "tred-projection")):
            write_run(root, method, "flowers102", seed, 72.0 + i + 2 * seed, reg=tred, extra=STAGE1_CHECKS)
    paths = all_plots(build_table(root), root, root / "plots")
    assert {p.name for p in paths} >= {"accuracy_per_method.png", "paired_difference_vs_finetune.png",
                                       "stage1_checks.png"}
    for p in paths:
        img = mpimg.imread(p)[..., :3]
        border = np.concatenate([img[:4].reshape(-1, 3), img[-4:].reshape(-1, 3),
                                 img[:, :4].reshape(-1, 3), img[:, -4:].reshape(-1, 3)])
        assert border.min() > 0.95, f"{p.name}: something is drawn up to the edge of the image"
