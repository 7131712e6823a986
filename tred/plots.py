"""Figures of a sweep (matplotlib, Agg, PNG): accuracy per method, accuracy vs sample rate,
TRED stage-1 diagnostics over epochs. Each function returns the paths it wrote."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tred.results import Table, display_name  # noqa: E402

STAGE1 = "disentangle"
NOT_DIAGNOSTIC = ("epoch", "iter", "step")


def accuracy_bars(table: Table, out: Path) -> list[Path]:
    """Grouped bars: one group per column (dataset [+ rate]), one bar per method, ± std."""
    stats, methods = table.stats, table.grid.methods
    x = np.arange(len(table.columns))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(x) + 0.4 * len(methods)), 4))
    for i, m in enumerate(methods):
        sub = stats[stats.method == m].set_index("column").reindex(table.columns)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, sub["mean"], width,
               yerr=sub["std"].fillna(0), capsize=2, label=display_name(m))
    ax.set_xticks(x, table.columns)
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(f"Accuracy per method (mean ± std over {len(table.grid.seeds)} seeds)")
    ax.legend(fontsize="small", ncol=2, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return [_save(fig, out / "accuracy_per_method.png")]


def accuracy_vs_rate(table: Table, out: Path) -> list[Path]:
    """One panel per dataset: accuracy against the sampling rate, one line per method."""
    if len(table.grid.rates) < 2:
        return []
    datasets = table.grid.datasets
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.8), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        for m in table.grid.methods:
            sub = table.stats[(table.stats.method == m) & (table.stats.dataset == d)].sort_values("sample_rate")
            ax.errorbar(sub["sample_rate"] * 100, sub["mean"], yerr=sub["std"].fillna(0),
                        marker="o", capsize=2, label=display_name(m))
        ax.set_title(d)
        ax.set_xlabel("sampling rate (% of training set)")
        ax.set_ylabel("top-1 test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small")
    return [_save(fig, out / "accuracy_vs_sample_rate.png")]


def stage1_diagnostics(runs: pd.DataFrame, sweep_dir: Path, out: Path) -> list[Path]:
    """For each TRED method: every numeric stage-1 column of metrics.csv against the epoch,
    one line per dataset (mean over seeds and rates)."""
    paths = []
    for method in sorted(m for m in runs["method"].unique() if m.startswith("tred")):
        frames = []
        for _, r in runs[(runs.method == method)].iterrows():
            f = Path(sweep_dir) / r["run_dir"] / "metrics.csv"
            if not f.is_file():
                continue
            df = pd.read_csv(f)
            if "stage" not in df:
                continue
            df = df[df["stage"] == STAGE1].copy()
            if df.empty:
                continue
            df["epoch"] = df["epoch"] if "epoch" in df else np.arange(1, len(df) + 1)
            df["dataset"] = r["dataset"]
            frames.append(df)
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        cols = [c for c in df.select_dtypes("number").columns
                if c not in NOT_DIAGNOSTIC and df[c].notna().any()]
        if not cols:
            continue
        ncol = min(3, len(cols))
        nrow = math.ceil(len(cols) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
        for ax, c in zip(axes.flat, cols):
            for d, sub in df.groupby("dataset"):
                curve = sub.groupby("epoch")[c].mean()
                ax.plot(curve.index, curve.values, marker=".", label=d)
            ax.set_title(c)
            ax.set_xlabel("stage-1 epoch")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(cols):]:
            ax.axis("off")
        axes[0][0].legend(fontsize="small")
        fig.suptitle(f"{display_name(method)}: stage-1 (disentangle) diagnostics")
        paths.append(_save(fig, out / f"stage1_{method}.png"))
    return paths


def all_plots(table: Table, sweep_dir: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [*accuracy_bars(table, out), *accuracy_vs_rate(table, out),
            *stage1_diagnostics(table.runs, sweep_dir, out)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
