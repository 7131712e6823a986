"""The numbers of a paper-style table: `build_table(sweep_dir)` -> `Table`.

Rows are methods in the paper's order, columns are datasets (x sample rates when the sweep has
several) plus the average over columns and the average gain over fine-tuning:

    cell(m, c)  = mean_s acc(m, c, s) ± std_s (sample std, ddof=1) over the completed seeds s
    avg(m)      = mean_c cell(m, c)                       (only when every column has a value)
    gain(m)     = mean_c [cell(m, c) - cell(l2, c)]       (same condition, for m and for l2)

and each method's difference to fine-tuning paired by seed, with a 95% Student-t interval, per
column and for the per-seed average over the columns (`tred.tables.stats`; a block's arrows are
Holm-corrected across its rows):

    d_s(m, c)   = acc(m, c, s) - acc(l2, c, s)     over the seeds s both completed
    d_s(m, Avg) = mean_c acc(m, c, s) - mean_c acc(l2, c, s)   (seeds complete in every column)

and the TRED rows' differences, paired the same way, to the best baseline: the one of L2-SP, AT,
DELTA and BSS with the highest average in the table (a comparison against the strongest
published competitor; nothing is chosen for TRED by it). `against` names more references for the
TRED rows, paired the same way (e.g. `tred-full`: the same stage 2 toward the whole source map,
so the difference is what the disentanglement adds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tred.methods import BASELINES, FINETUNE, is_tred
from tred.tables.runs import CONFIGS, KEY, Grid, TableError, expected_grid, load_runs
from tred.tables.stats import holm, paired_difference


@dataclass
class Table:
    grid: Grid
    stats: pd.DataFrame  # method, dataset, sample_rate, column, mean, std, n
    columns: list[str]
    missing: pd.DataFrame  # method, dataset, sample_rate, seed, reason, run_dir
    runs: pd.DataFrame  # one row per run directory (load_runs)
    digits: int = 1
    against: tuple[str, ...] = ()  # more references for the TRED rows (make_table --against)
    summary: pd.DataFrame = field(init=False)  # index method: one (mean, std, n) per column + avg, gain
    paired: dict = field(init=False)  # (method, column or "Avg.") -> Paired difference to fine-tuning
    best_baseline: str | None = field(init=False)  # the baseline with the highest average
    paired_best: dict = field(init=False)  # (TRED method, column or "Avg.") -> Paired difference to it
    paired_extra: dict = field(init=False)  # reference in `against` -> {(TRED method, column): Paired}

    def __post_init__(self):
        self.summary = summarize(self.stats, self.grid.methods, self.columns)
        # each block's arrows are Holm-corrected across its rows, column by column (tred.tables.stats)
        self.paired = holm(paired_against(self, FINETUNE, [m for m in self.grid.methods if m != FINETUNE]))
        self.best_baseline = best_baseline(self)
        tred = [m for m in self.grid.methods if is_tred(m)]
        self.paired_best = holm(paired_against(self, self.best_baseline, tred)) if self.best_baseline and tred else {}
        unknown = [r for r in self.against if r not in self.grid.methods]
        if unknown:
            raise TableError(f"--against {' '.join(unknown)}: no such method in the table "
                             f"(methods: {', '.join(self.grid.methods)})")
        self.paired_extra = {r: holm(paired_against(self, r, [m for m in tred if m != r])) for r in self.against}

    @property
    def expected_runs(self) -> int:
        g = self.grid
        return len(g.methods) * len(g.datasets) * len(g.rates) * len(g.seeds)


def column_label(dataset: str, rate: float, several_rates: bool) -> str:
    return f"{dataset} {rate * 100:g}%" if several_rates else dataset


def paired_columns(table: Table) -> list[str]:
    """The columns of the paired differences: the table's, plus `Avg.` when it has several."""
    return [*table.columns, "Avg."] if len(table.columns) > 1 else list(table.columns)


def build_table(sweep_dir: str | Path, digits: int = 1, configs: Path = CONFIGS,
                against: tuple[str, ...] = (), allow_mixed: bool = False) -> Table:
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir, allow_mixed=allow_mixed)
    grid = expected_grid(runs, sweep_dir, configs)
    several = len(grid.rates) > 1
    done = runs[runs["status"] == "completed"]
    by_key = runs.set_index(KEY)
    stats, missing = [], []
    for m, d, r in grid.cells():
        accs = done[(done.method == m) & (done.dataset == d) & (done.sample_rate == r)]["test_acc"]
        stats.append({"method": m, "dataset": d, "sample_rate": r, "column": column_label(d, r, several),
                      "mean": accs.mean() if len(accs) else math.nan,
                      "std": accs.std(ddof=1) if len(accs) > 1 else math.nan, "n": len(accs)})
        for s in grid.seeds:
            if (m, d, r, s) in by_key.index:
                row = by_key.loc[(m, d, r, s)]
                if row["status"] == "completed":
                    continue
                reason, where = row["status"], row["run_dir"]
            else:
                reason, where = "not run", None
            missing.append({"method": m, "dataset": d, "sample_rate": r, "seed": s,
                            "reason": reason, "run_dir": where})
    columns = list(dict.fromkeys(column_label(d, r, several) for d in grid.datasets for r in grid.rates))
    return Table(grid, pd.DataFrame(stats), columns,
                 pd.DataFrame(missing, columns=[*KEY, "reason", "run_dir"]), runs, digits, tuple(against))


def summarize(stats: pd.DataFrame, methods: list[str], columns: list[str]) -> pd.DataFrame:
    means = stats.pivot(index="method", columns="column", values="mean").reindex(index=methods, columns=columns)
    avg = means.mean(axis=1, skipna=False)
    if FINETUNE in means.index:
        gain = (means - means.loc[FINETUNE]).mean(axis=1, skipna=False)
    else:
        gain = pd.Series(math.nan, index=means.index)
    out = {}
    for c in columns:
        sub = stats[stats.column == c].set_index("method").reindex(methods)
        out[(c, "mean")], out[(c, "std")], out[(c, "n")] = sub["mean"], sub["std"], sub["n"]
    out[("Avg.", "mean")], out[("Gain vs FT", "mean")] = avg, gain
    return pd.DataFrame(out)


def per_seed(table: Table) -> dict:
    """(method, column) -> {seed: test accuracy} over the completed runs."""
    several = len(table.grid.rates) > 1
    done = table.runs[table.runs["status"] == "completed"]
    out: dict = {}
    for r in done.itertuples():
        out.setdefault((r.method, column_label(r.dataset, r.sample_rate, several)), {})[int(r.seed)] = float(r.test_acc)
    return out


def best_baseline(table: Table) -> str | None:
    """The baseline (L2-SP, AT, DELTA, BSS) with the highest average over the columns, if any has one."""
    avg = table.summary[("Avg.", "mean")]
    scores = {m: avg[m] for m in table.grid.methods if m in BASELINES and not math.isnan(avg[m])}
    return max(scores, key=scores.get) if scores else None


def paired_against(table: Table, ref: str, methods: list[str]) -> dict:
    """Paired differences of `methods` to `ref` per (method, column) and (method, "Avg."); empty
    when the table has no `ref` row."""
    if ref not in table.grid.methods:
        return {}
    accs = per_seed(table)

    def seed_average(m):  # seeds present in every column
        cols = [accs.get((m, c), {}) for c in table.columns]
        seeds = set.intersection(*(set(c) for c in cols)) if cols else set()
        return {s: sum(c[s] for c in cols) / len(cols) for s in seeds}

    out = {}
    for m in methods:
        for c in table.columns:
            out[(m, c)] = paired_difference(accs.get((m, c), {}), accs.get((ref, c), {}))
        out[(m, "Avg.")] = paired_difference(seed_average(m), seed_average(ref))
    return out
