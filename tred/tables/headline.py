"""The README's headline: several tables (e.g. Flowers-102 at 5 and at 10 images per class) in one
compact table of each method's paired difference to fine-tuning, and one figure of the same.

    column b (a labelled sweep):  d(m, b) = the table's paired difference of m to fine-tuning on
                                  its `Avg.` column (its only column when it has one dataset)

Fine-tuning's own row gives its mean accuracy, so every difference has its base. The numbers are
those of `build_table` on each sweep (the same as the sweeps' table.md); nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tred.methods import FINETUNE, display_name  # noqa: E402
from tred.tables.render import CLAIM_GAIN, _paired_text, paired_columns  # noqa: E402
from tred.tables.stats import NO_PAIRS  # noqa: E402
from tred.tables.table import Table  # noqa: E402


@dataclass
class Column:
    label: str  # e.g. "5 per class"
    table: Table

    @property
    def key(self) -> str:
        return paired_columns(self.table)[-1]  # "Avg." with several columns, else the one dataset

    def paired(self, method: str):
        return self.table.paired.get((method, self.key), NO_PAIRS)

    def finetune_mean(self) -> float:
        return float(self.table.summary.loc[FINETUNE, ("Avg.", "mean")])


def methods_of(columns: list[Column]) -> list[str]:
    return list(dict.fromkeys(m for c in columns for m in c.table.grid.methods if m != FINETUNE))


def to_markdown(columns: list[Column]) -> str:
    head = ["Δ vs fine-tuning, points [95% CI]", *(c.label for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + [":---:"] * len(columns)) + "|"]
    lines.append("| " + " | ".join(["Fine-tune (L2), accuracy %",
                                    *(f"{c.finetune_mean():.{c.table.digits}f}" for c in columns)]) + " |")
    for m in methods_of(columns):
        cells = [_paired_text(c.paired(m), c.table.digits, len(c.table.grid.seeds), "md") for c in columns]
        lines.append("| " + " | ".join([display_name(m), *cells]) + " |")
    seeds = sorted({len(c.table.grid.seeds) for c in columns})
    lines += ["", f"Each method's top-1 test accuracy minus fine-tuning's, paired by seed, mean [95% Student-t "
              f"interval] over {' / '.join(map(str, seeds))} seeds; ↑ / ↓: p < 0.05 after Holm's correction across "
              "the rows of a column (the interval shown is the uncorrected one)."]
    return "\n".join(lines) + "\n"


def figure(columns: list[Column], path: Path, title: str) -> Path:
    """One row per method, one marker per column, the 95% interval as a bar; 0 = fine-tuning, the
    dashed line = the paper's claim (+2 points)."""
    methods = methods_of(columns)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.42 * len(methods)), layout="constrained")
    step = 0.6 / max(len(columns), 1)
    colors = plt.get_cmap("tab10").colors
    for j, col in enumerate(columns):
        pts = [(i + (j - (len(columns) - 1) / 2) * step, col.paired(m)) for i, m in enumerate(methods)]
        pts = [(y, p) for y, p in pts if p.n]
        lo = [0 if p.low != p.low else p.mean - p.low for _, p in pts]  # nan: one pair, no bar
        hi = [0 if p.high != p.high else p.high - p.mean for _, p in pts]
        ax.errorbar([p.mean for _, p in pts], [y for y, _ in pts], xerr=[lo, hi], fmt="o", capsize=3,
                    color=colors[j % len(colors)], label=col.label)
    ax.axvline(0, color="black", lw=1)
    ax.axvline(CLAIM_GAIN, color="grey", lw=1, ls="--", label=f"the paper's claim: +{CLAIM_GAIN:g}")
    ax.set_yticks(range(len(methods)), [display_name(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel("difference to fine-tuning (points), paired by seed, 95% interval")
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize="small", loc="outside upper right", ncols=len(columns) + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
