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

from tred.io import read_json  # noqa: E402
from tred.methods import FINETUNE, display_name, is_tred, method_order  # noqa: E402
from tred.tables.stats import NO_PAIRS  # noqa: E402
from tred.tables.table import Table, paired_columns  # noqa: E402

STAGE1 = "disentangle"
NOT_DIAGNOSTIC = ("epoch", "iter", "step")


def accuracy_bars(table: Table, out: Path) -> list[Path]:
    """Grouped bars: one group per column (dataset [+ rate]), one bar per method, ± std."""
    stats, methods = table.stats, table.grid.methods
    x = np.arange(len(table.columns))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(x) + 0.4 * len(methods)) + 2.5, 4))
    colors = _method_colors(methods)  # distinct for up to 20 methods
    for i, m in enumerate(methods):
        sub = stats[stats.method == m].set_index("column").reindex(table.columns)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, sub["mean"], width, color=colors[m],
               yerr=sub["std"].fillna(0), capsize=2, label=display_name(m))
    ax.set_xticks(x, table.columns)
    ax.set_ylabel("top-1 test accuracy (%)")
    low = (stats["mean"] - stats["std"].fillna(0)).min()
    if not math.isnan(low):  # an axis that shows the differences, not 0-100
        ax.set_ylim(max(0.0, math.floor(low / 5) * 5 - 5), None)
    n = stats["n"].max() if len(stats) else 0
    ax.set_title(f"Accuracy per method (mean ± std over up to {n} seeds; n per cell in the table)")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="y", alpha=0.3)
    return [_save(fig, out / "accuracy_per_method.png")]


def accuracy_vs_rate(table: Table, out: Path) -> list[Path]:
    """One panel per dataset: accuracy against the sampling rate, one line per method."""
    if len(table.grid.rates) < 2:
        return []
    datasets = table.grid.datasets
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets) + 2.5, 3.8), squeeze=False)
    colors = _method_colors(table.grid.methods)  # the same colour per method as accuracy_bars
    for ax, d in zip(axes[0], datasets):
        for m in table.grid.methods:
            sub = table.stats[(table.stats.method == m) & (table.stats.dataset == d)].sort_values("sample_rate")
            ax.errorbar(sub["sample_rate"] * 100, sub["mean"], yerr=sub["std"].fillna(0), color=colors[m],
                        marker="o", capsize=2, label=display_name(m))
        ax.set_title(d)
        ax.set_xlabel("sampling rate (% of training set)")
        ax.set_ylabel("top-1 test accuracy (%)")
        ax.grid(alpha=0.3)
    # outside the panels: with ten methods a legend inside covers the curves
    axes[0][-1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return [_save(fig, out / "accuracy_vs_sample_rate.png")]


def stage1_diagnostics(runs: pd.DataFrame, sweep_dir: Path, out: Path) -> list[Path]:
    """For each TRED method: every numeric stage-1 column of metrics.csv against the epoch,
    one line per dataset (mean over seeds and rates)."""
    paths = []
    for method in sorted(m for m in runs["method"].unique() if is_tred(m)):
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


def paired_differences(table: Table, out: Path) -> list[Path]:
    """One row per method: its difference to fine-tuning paired by seed, with the 95% interval,
    one marker per column (dataset / budget); the zero line is fine-tuning."""
    if not table.paired:
        return []
    methods = [m for m in table.grid.methods if m != FINETUNE]
    cols = paired_columns(table)
    labels = [display_name(m) for m in methods]
    # room for the row labels (left) and the legend (right) besides a 4.5-inch plot
    width = 4.5 + 0.09 * max(map(len, labels), default=0) + (1.6 if len(cols) > 1 else 0)
    fig, ax = plt.subplots(figsize=(width, 1.3 + 0.45 * len(methods) * max(1, len(cols) / 2)))
    step = 0.7 / max(len(cols), 1)
    colors = plt.get_cmap("tab10").colors
    for j, c in enumerate(cols):
        ys, means, lo, hi = [], [], [], []
        for i, m in enumerate(methods):
            p = table.paired.get((m, c), NO_PAIRS)
            if p.n == 0:
                continue
            ys.append(i + (j - (len(cols) - 1) / 2) * step)
            means.append(p.mean)
            lo.append(0 if math.isnan(p.low) else p.mean - p.low)
            hi.append(0 if math.isnan(p.high) else p.high - p.mean)
        ax.errorbar(means, ys, xerr=[lo, hi], fmt="o", capsize=3, color=colors[j % len(colors)], label=c)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(methods)), labels)
    ax.set_ylim(len(methods) - 0.5, -0.5)  # first method on top; a row's outer markers stay inside
    ax.set_xlabel("difference to fine-tuning (points)\npaired by seed, 95% interval")
    n = len(table.grid.seeds)
    ax.set_title(f"Paired difference to fine-tuning\n({n} seed{'s' if n != 1 else ''}; no bar: one pair)")
    ax.grid(axis="x", alpha=0.3)
    if len(cols) > 1:
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return [_save(fig, out / "paired_difference_vs_finetune.png")]


def training_curves(runs: pd.DataFrame, sweep_dir: Path, out: Path, methods=None) -> list[Path]:
    """Training accuracy (augmented batches, `train_acc` of metrics.csv) and cross-entropy against
    the iteration, one line per method (mean over seeds), one panel pair per column: where the
    fine-tuning regime overfits (accuracy ~100% long before the end) shows here. `methods`: the
    table's methods, whose order fixes the colours (as in accuracy_bars); default: the runs'."""
    frames = []
    for r in runs.itertuples():
        f = Path(sweep_dir) / r.run_dir / "metrics.csv"
        if not f.is_file():
            continue
        df = pd.read_csv(f)
        if "stage" not in df or "train_acc" not in df:
            continue
        df = df[df["stage"] == "finetune"][["iter", "train_acc", "ce"]].copy()
        df["method"], df["dataset"] = r.method, r.dataset
        frames.append(df)
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    datasets = sorted(df["dataset"].unique())
    fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets) + 2.5, 6.4), squeeze=False,
                             sharex="col")
    order = method_order(list(methods if methods is not None else df["method"].unique()))
    order += sorted(set(df["method"]) - set(order))
    colors = _method_colors(order)
    for j, d in enumerate(datasets):
        for m in order:
            sub = df[(df.dataset == d) & (df.method == m)]
            if sub.empty:
                continue
            curve = sub.groupby("iter")[["train_acc", "ce"]].mean()
            axes[0][j].plot(curve.index, curve["train_acc"], color=colors[m], label=display_name(m))
            axes[1][j].plot(curve.index, curve["ce"], color=colors[m])
        axes[0][j].set_title(f"{d}: training accuracy\n(augmented batches)")
        axes[0][j].set_ylabel("train accuracy (%)")
        axes[1][j].set_ylabel("cross-entropy")
        axes[1][j].set_yscale("log")
        axes[1][j].set_xlabel("iteration")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # not over the curves
    return [_save(fig, out / "training_curves.png")]


def stage1_checks(runs: pd.DataFrame, sweep_dir: Path, out: Path) -> list[Path]:
    """Does stage 1 do what it says? Per TRED method (mean over its runs): the relevant head's
    accuracy next to a probe on the full source feature (should be close), a probe on the
    irrelevant part (should be near chance, the dashed line), and the reference gap (should be
    well below 1)."""
    rows = []
    for r in runs[runs["method"].map(is_tred)].itertuples():
        f = Path(sweep_dir) / r.run_dir / "result.json"
        if not f.is_file():
            continue
        res = read_json(f)
        split = res.get("disentangle_diagnostics_split", "test")
        rows.append({"method": r.method, "relevant": res.get(f"disentangle_relevant_{split}_acc"),
                     "source probe": res.get(f"source_probe_{split}_acc"),
                     "irrelevant probe": res.get(f"disentangle_irrelevant_probe_{split}_acc"),
                     "gap": res.get("disentangle_reference_gap"),
                     "chance": 100.0 / res["num_classes"] if res.get("num_classes") else math.nan})
    rows = [r for r in rows if r["relevant"] is not None and r["source probe"] is not None]
    if not rows:
        return []
    df = pd.DataFrame(rows).set_index("method").astype(float).groupby(level=0).mean()
    methods = method_order(list(df.index))
    bars = ["relevant", "source probe", "irrelevant probe"]
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(11, 0.9 + 0.5 * len(methods) + 1.5),
                                     gridspec_kw={"width_ratios": [3, 1]})
    y = np.arange(len(methods))
    h = 0.8 / len(bars)
    for i, b in enumerate(bars):
        ax.barh(y + (i - 1) * h, df.loc[methods, b].astype(float), h, label=b)
    chance = df["chance"].dropna()
    if len(chance):
        ax.axvline(float(chance.mean()), color="black", ls="--", lw=1, label="chance")
    ax.set_yticks(y, [display_name(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel("accuracy on the diagnostics split (%)")
    ax.set_title("Stage 1: z_r should keep the target information, z_i lose it")
    # under the figure (kept by _save's tight bounding box): inside, it covers the last method's bars
    fig.legend(*ax.get_legend_handles_labels(), fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=4)
    ax.grid(axis="x", alpha=0.3)
    gaps = df.loc[methods, "gap"].astype(float)
    ax_gap.scatter(gaps, y, color="black", zorder=3)
    ax_gap.axvline(1.0, color="red", ls="--", lw=1)
    ax_gap.set_xscale("log")
    finite = gaps[np.isfinite(gaps) & (gaps > 0)]
    ax_gap.set_xlim(min(1e-2, float(finite.min()) / 2) if len(finite) else 1e-2,
                    max(1e2, float(finite.max()) * 2) if len(finite) else 1e2)
    ax_gap.set_ylim(len(methods) - 0.5, -0.5)
    ax_gap.set_yticks(y, [""] * len(methods))
    ax_gap.set_title("reference gap\n(1 = as far from z as zero)")
    ax_gap.grid(axis="x", alpha=0.3)
    return [_save(fig, out / "stage1_checks.png")]


def _method_colors(methods) -> dict:
    cmap = plt.get_cmap("tab20" if len(methods) > 10 else "tab10")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def all_plots(table: Table, sweep_dir: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [*accuracy_bars(table, out), *accuracy_vs_rate(table, out), *paired_differences(table, out),
            *training_curves(table.runs, sweep_dir, out, table.grid.methods),
            *stage1_checks(table.runs, sweep_dir, out),
            *stage1_diagnostics(table.runs, sweep_dir, out)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    # the saved image grows to hold every title, label and outside legend: nothing is cut at an edge
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path
