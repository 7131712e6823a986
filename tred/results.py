"""Paper-style tables from a sweep directory: every run's result.json -> one table.

Rows are methods in the paper's order, columns are datasets (x sample rates when the sweep has
several) plus the average over columns and the average gain over fine-tuning:

    cell(m, c)  = mean_s acc(m, c, s) ± std_s (sample std, ddof=1) over the completed seeds s
    avg(m)      = mean_c cell(m, c)                       (only when every column has a value)
    gain(m)     = mean_c [cell(m, c) - cell(l2, c)]       (same condition, for m and for l2)

and, below it, each method's difference to fine-tuning paired by seed, with a 95% Student-t
interval, per column and for the per-seed average over the columns (`tred.stats`):

    d_s(m, c)   = acc(m, c, s) - acc(l2, c, s)     over the seeds s both completed
    d_s(m, Avg) = mean_c acc(m, c, s) - mean_c acc(l2, c, s)   (seeds complete in every column)

and the TRED rows' differences, paired the same way, to the best baseline: the one of L2-SP, AT,
DELTA and BSS with the highest average in the table (a comparison against the strongest
published competitor; nothing is chosen for TRED by it).

The expected grid (methods x datasets x rates x seeds) is what the sweep declared in its
multirun.yaml together with everything found on disk, so a run that failed, was interrupted or
never started shows as a missing cell or a seed count, never as a silently smaller table.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tred.errors import TredError
from tred.io import read_json
from tred.methods import (BASELINES, DISPLAY, FINETUNE, PAPER_ORDER, display_name,  # noqa: F401 - re-exported
                          is_tred, method_name, method_of_config, method_order)
from tred.stats import BETTER, NO_PAIRS, WORSE, Paired, paired_difference

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KEY = ["method", "dataset", "sample_rate", "seed"]
# config.yaml keys that must agree between the runs of one table (the rest are sweep axes).
SHARED_KEYS = ("sweep_name", "backbone", "trainer")
NOT_SHARED = ("threads", "num_workers", "device")


class TableError(TredError):
    """The sweep directory cannot give an honest table (empty, mixed, corrupt)."""


# ---------------------------------------------------------------------------- reading runs
def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per run directory (result.json, or config.yaml only = unfinished)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise TableError(f"sweep directory {sweep_dir} does not exist; run the sweep first "
                         "(e.g. `python scripts/train.py -m experiment=mini_table`)")
    run_dirs = sorted({p.parent for name in ("config.yaml", "result.json")
                       for p in sweep_dir.rglob(name) if is_run_file(p, sweep_dir)})
    rows, configs = [], {}
    for d in run_dirs:
        cfg = OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) if (d / "config.yaml").is_file() else None
        if cfg is not None:
            configs[d] = cfg
        if (d / "result.json").is_file():
            rows.append(_read_result(d / "result.json"))
            if cfg is not None:
                rows[-1]["weights"], rows[-1]["weights_note"] = run_weights(cfg), cfg.get("weights_note") or ""
        elif cfg is not None:
            rows.append({"method": method_of_config(cfg), "dataset": cfg["dataset"]["name"],
                         "sample_rate": cfg["dataset"]["sample_rate"], "seed": cfg["seed"],
                         "sweep": cfg["sweep_name"], "status": "unfinished", "test_acc": math.nan})
        rows[-1]["run_dir"] = str(d.relative_to(sweep_dir))
    if not rows:
        raise TableError(f"no runs under {sweep_dir} (no result.json or config.yaml found); "
                         "run the sweep first or pass the sweep directory, e.g. outputs/sweeps/mini_table")
    runs = pd.DataFrame(rows)
    runs["sample_rate"] = runs["sample_rate"].astype(float)
    runs["seed"] = runs["seed"].astype(int)
    _check_one_experiment(runs, configs, sweep_dir)
    return runs


def main_weights(cfg: dict) -> list[tuple[str, str, float]]:
    """(regularizer, key, value) of the main weight (`Regularizer.weight_key`) of each
    regularizer in a run's config, e.g. [("l2sp", "alpha", 0.1)]."""
    from tred.regularizers import REGISTRY  # late: imports torch

    out = []
    for name, node in (cfg.get("regularizer") or {}).items():
        key = getattr(REGISTRY.get(name), "weight_key", None)
        if key is not None and isinstance(node, dict) and key in node:
            out.append((name, key, float(node[key])))
    return out


def run_weights(cfg: dict) -> str:
    """The main weights as text: `alpha=0.001`, or `l2sp.alpha=0.1, bss.eta=0.001` for several."""
    weights = main_weights(cfg)
    return ", ".join((f"{n}." if len(weights) > 1 else "") + f"{k}={v:g}" for n, k, v in weights)


def is_run_file(path: Path, sweep_dir: Path) -> bool:
    """Not Hydra's .hydra/ copies nor W&B's offline-run files."""
    parts = path.relative_to(sweep_dir).parts[:-1]
    return not any(p.startswith(".") or p == "wandb" for p in parts)


def _read_result(path: Path) -> dict:
    try:
        res = read_json(path)
    except (OSError, ValueError) as exc:
        raise TableError(f"corrupt {path}: {exc}; delete it (the sweep re-runs that run) "
                         "or fix it, then build the table again") from None
    need = ["status", "method", "dataset", "sample_rate", "seed", "sweep"]
    if not isinstance(res, dict) or any(k not in res for k in need) or (
            res.get("status") == "completed" and not isinstance(res.get("test_acc"), (int, float))):
        raise TableError(f"corrupt {path}: it must hold {need} (+ test_acc when completed); "
                         "delete it (the sweep re-runs that run) and build the table again")
    if res.get("eval_split", "test") != "test":
        raise TableError(f"{path} was scored on a held-out part of the training split "
                         "(dataset.validation=true): a tuning run, not a test result; summarize a tuning "
                         "sweep with scripts/tune_summary.py")
    out = {k: res.get(k) for k in [*need, "test_acc", "error", "threads", "wall_time_s", "stage1_time_s",
                                   "finetune_time_s", "disentangle_reference_gap"]}
    warnings = res.get("warnings") or []
    out["warnings"] = "; ".join(map(str, warnings)) if isinstance(warnings, list) else str(warnings)
    versions = dict(res.get("versions") or {})
    code = res.get("code_version") or {}
    if code.get("commit"):
        versions["code"] = code["commit"][:10] + ("+dirty" if code.get("dirty") else "")
    out["versions"] = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) if versions else ""
    return out


def _check_one_experiment(runs: pd.DataFrame, configs: dict, sweep_dir: Path) -> None:
    sweeps = runs.groupby("sweep")["run_dir"].first()
    if len(sweeps) > 1:
        listing = ", ".join(f"{name!r} (e.g. {d})" for name, d in sweeps.items())
        raise TableError(f"runs from different sweeps are mixed in {sweep_dir}: {listing}; "
                         "keep one sweep per directory (hydra.sweep.dir) or move the others away")
    first_dir, first = next(iter(configs.items()), (None, None))
    for d, cfg in configs.items():
        for key in SHARED_KEYS:
            a, b = _shared(first, key), _shared(cfg, key)
            if a != b:
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) else [key]
                raise TableError(
                    f"runs of different experiments are mixed in {sweep_dir}: `{key}` differs "
                    f"({', '.join(map(str, diff))}) between {first_dir} and {d}; keep one experiment per sweep directory")
    dup = runs[runs.duplicated(KEY, keep=False)]
    if len(dup):
        raise TableError(f"{len(dup)} run directories share method/dataset/sample rate/seed, e.g. "
                         f"{', '.join(dup['run_dir'].head(2))}: the sweep has an axis the table "
                         "cannot show (other overrides); build one table per value in its own directory")


def _shared(cfg: dict, key: str):
    node = cfg.get(key)
    return {k: v for k, v in node.items() if k not in NOT_SHARED} if isinstance(node, dict) else node


# ---------------------------------------------------------------------------- expected grid
def sweep_axes(sweep_dir: Path) -> dict[str, list[str]]:
    """The values of each swept key, from the sweep's multirun.yaml (params, then command line)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return {}
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra = OmegaConf.load(path).hydra
    params = OmegaConf.to_container(hydra.sweeper.params) if hydra.sweeper.get("params") else {}
    strings = [f"{k}={v}" for k, v in params.items()] + list(hydra.overrides.task)
    axes = {}
    for ov in OverridesParser.create().parse_overrides(strings):
        if ov.is_sweep_override():
            axes[ov.get_key_element()] = list(ov.sweep_string_iterator())
        else:
            axes[ov.get_key_element()] = [ov.get_value_element_as_str()]
    return axes


def preset_method(preset: str, configs: Path = CONFIGS) -> str:
    """The method name a `method=<preset>` option selects, read from its defaults list."""
    path = configs / "method" / f"{preset}.yaml"
    if not path.is_file():
        raise TableError(f"the sweep uses method={preset} but {path} does not exist")
    picks = {}
    for item in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):
        if isinstance(item, dict):
            for k, v in item.items():
                picks[k.replace("override", "").strip().lstrip("/")] = v
    reg = picks.get("regularizer")
    regs = reg if isinstance(reg, list) else [reg]
    preset = OmegaConf.load(path)
    parts = (preset.get("disentangle") or {}).get("parts")
    reference = ((preset.get("regularizer") or {}).get("tred") or {}).get("reference")
    return method_name(regs, picks.get("disentangle"), parts, reference)


@dataclass
class Grid:
    methods: list[str]
    datasets: list[str]
    rates: list[float]
    seeds: list[int]

    def cells(self):
        return itertools.product(self.methods, self.datasets, self.rates)


def expected_grid(runs: pd.DataFrame, sweep_dir: Path, configs: Path = CONFIGS) -> Grid:
    """Declared sweep values (multirun.yaml) united with what is on disk, in sweep order."""
    axes = sweep_axes(sweep_dir)
    if "method" in axes:
        methods = [preset_method(p, configs) for p in axes["method"]]
    elif "regularizer" in axes:
        dis = axes.get("disentangle", [None])
        parts = axes.get("disentangle.parts", [None])
        methods = [method_name(r, d, p) for r in axes["regularizer"] for d in dis for p in parts]
    else:
        methods = []
    datasets = axes.get("dataset", [])
    rates = [float(r) for r in axes.get("dataset.sample_rate", [])]
    seeds = [int(s) for s in axes.get("seed", [])]

    def union(declared, found):
        return list(dict.fromkeys([*declared, *sorted(set(found) - set(declared))]))

    return Grid(method_order(union(methods, runs["method"])), union(datasets, runs["dataset"]),
                sorted(union(rates, runs["sample_rate"])), union(seeds, runs["seed"]))


# ---------------------------------------------------------------------------- the table
@dataclass
class Table:
    grid: Grid
    stats: pd.DataFrame  # method, dataset, sample_rate, column, mean, std, n
    columns: list[str]
    missing: pd.DataFrame  # method, dataset, sample_rate, seed, reason, run_dir
    runs: pd.DataFrame  # one row per run directory (load_runs)
    digits: int = 1
    summary: pd.DataFrame = field(init=False)  # index method: one (mean, std, n) per column + avg, gain
    paired: dict = field(init=False)  # (method, column or "Avg.") -> Paired difference to fine-tuning
    best_baseline: str | None = field(init=False)  # the baseline with the highest average
    paired_best: dict = field(init=False)  # (TRED method, column or "Avg.") -> Paired difference to it

    def __post_init__(self):
        self.summary = summarize(self.stats, self.grid.methods, self.columns)
        self.paired = paired_against(self, FINETUNE, [m for m in self.grid.methods if m != FINETUNE])
        self.best_baseline = best_baseline(self)
        tred = [m for m in self.grid.methods if is_tred(m)]
        self.paired_best = paired_against(self, self.best_baseline, tred) if self.best_baseline and tred else {}

    @property
    def expected_runs(self) -> int:
        g = self.grid
        return len(g.methods) * len(g.datasets) * len(g.rates) * len(g.seeds)


def column_label(dataset: str, rate: float, several_rates: bool) -> str:
    return f"{dataset} {rate * 100:g}%" if several_rates else dataset


def build_table(sweep_dir: str | Path, digits: int = 1, configs: Path = CONFIGS) -> Table:
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir)
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
                 pd.DataFrame(missing, columns=[*KEY, "reason", "run_dir"]), runs, digits)


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


def weights_caption(table: Table) -> str:
    """`Weights: L2-SP alpha=0.001; ...` from the runs' own configs, and how they were chosen."""
    runs = table.runs
    if "weights" not in runs:
        return ""
    parts = []
    for m in table.grid.methods:
        values = sorted({w for w in runs.loc[runs.method == m, "weights"].dropna() if w})
        if values:
            parts.append(f"{display_name(m)} {' / '.join(values)}")
    if not parts:
        return ""
    notes = sorted({n for n in runs.get("weights_note", pd.Series(dtype=str)).dropna() if n})
    return "Weights: " + "; ".join(parts) + "." + (f" {' '.join(notes)}" if notes else "")


# ---------------------------------------------------------------------------- rendering
DASH = "—"


def _cells(table: Table, style: str) -> list[list[str]]:
    """Formatted body rows; style is 'md' or 'tex'."""
    s, k, n_exp = table.summary, table.digits, len(table.grid.seeds)
    pm = " $\\pm$ " if style == "tex" else " ± "
    bold = (lambda x: f"\\textbf{{{x}}}") if style == "tex" else (lambda x: f"**{x}**")
    dash = "---" if style == "tex" else DASH
    best = {c: s[(c, "mean")].round(k).max() for c in [*table.columns, "Avg.", "Gain vs FT"]}
    warned = warned_cells(table)
    body = []
    for m in table.grid.methods:
        row = [_escape(display_name(m)) if style == "tex" else display_name(m)]
        for c in table.columns:
            mean, std, n = s.at[m, (c, "mean")], s.at[m, (c, "std")], int(s.at[m, (c, "n")])
            if math.isnan(mean):
                row.append(dash)
                continue
            text = f"{mean:.{k}f}" + (f"{pm}{std:.{k}f}" if not math.isnan(std) else "")
            text = bold(text) if round(mean, k) == best[c] else text
            row.append(text + (f" (n={n})" if n < n_exp else "") + ("!" if (m, c) in warned else ""))
        for c, sign in (("Avg.", ""), ("Gain vs FT", "+")):
            v = s.at[m, (c, "mean")]
            text = dash if math.isnan(v) else f"{v:{sign}.{k}f}"
            row.append(bold(text) if not math.isnan(v) and round(v, k) == best[c] else text)
        body.append(row)
    return body


def warned_cells(table: Table) -> set:
    """(method, column) of the cells that average a run with a health warning."""
    runs, several = table.runs, len(table.grid.rates) > 1
    if "warnings" not in runs:
        return set()
    bad = runs[(runs["status"] == "completed") & runs["warnings"].fillna("").astype(bool)]
    return {(r.method, column_label(r.dataset, r.sample_rate, several)) for r in bad.itertuples()}


def _escape(text: str) -> str:
    for ch in "\\&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text


def missing_note(table: Table) -> str:
    miss, total = table.missing, table.expected_runs
    if miss.empty:
        return f"All {total} runs completed."
    counts = miss["reason"].value_counts()
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    return f"Missing {len(miss)} of {total} runs ({parts}); cells without any completed seed show {DASH}."


def health_note(table: Table) -> str:
    """Runs that completed but reported a health warning (chance-level accuracy, a penalty far
    above the cross-entropy): their cells carry `!` instead of being averaged silently."""
    runs = table.runs
    if "warnings" not in runs:
        return ""
    bad = runs[(runs["status"] == "completed") & runs["warnings"].fillna("").astype(bool)]
    if bad.empty:
        return ""
    listed = "; ".join(f"{r.run_dir}: {r.warnings}" for r in bad.head(5).itertuples())
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    return f"! = the cell averages {len(bad)} run(s) that reported a health warning: {listed}{more}."


def provenance_note(table: Table) -> str:
    """Thread counts and library / code versions of the completed runs, and whether they differ."""
    done = table.runs[table.runs["status"] == "completed"]
    parts = []
    if "threads" in done and done["threads"].notna().any():
        threads = sorted({int(t) for t in done["threads"].dropna()})
        if len(threads) > 1:
            parts.append(f"runs differ in CPU threads ({', '.join(map(str, threads))}): a table is reproducible "
                         "bit for bit only with the same launcher settings")
        else:
            parts.append(f"threads per run {threads[0]}")
    if "versions" in done:
        versions = sorted({v for v in done["versions"].dropna() if v})
        if len(versions) == 1:
            parts.append(f"versions: {versions[0]}")
        elif versions:
            parts.append(f"runs differ in versions: {' | '.join(versions)}")
    return ("Runs: " + "; ".join(parts) + ".") if parts else ""


def cost_note(table: Table) -> str:
    """What the completed runs cost, from their own `wall_time_s` (the sum is CPU- or GPU-time of
    one job at a time; a parallel sweep's wall clock is shorter), and TRED's stage-1 share."""
    done = table.runs[table.runs["status"] == "completed"]
    if "wall_time_s" not in done or done["wall_time_s"].isna().all():
        return ""
    wall = done["wall_time_s"].dropna()
    text = (f"Cost: {len(wall)} completed runs, {_duration(wall.sum())} of run time in all "
            f"(sum of wall_time_s), median {_duration(wall.median())} per run")
    tred = done[done["method"].str.startswith("tred") & done["stage1_time_s"].notna() & (done["finetune_time_s"] > 0)]
    if len(tred):
        share = 100 * tred["stage1_time_s"] / tred["finetune_time_s"]
        text += f"; TRED stage 1 = {share.min():.0f}-{share.max():.0f}% of the fine-tuning time"
        gaps = tred["disentangle_reference_gap"].dropna()
        if len(gaps):
            text += f", reference gap {gaps.min():.2g}-{gaps.max():.2g}"
    return text + "."


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def caption(table: Table) -> str:
    return (f"Top-1 test accuracy (%), mean ± std over {len(table.grid.seeds)} seeds "
            f"(n = seeds completed when fewer); best per column in bold; "
            f"Gain vs FT = average difference to fine-tuning (L2) over the columns.")


MARK = {BETTER: "↑", WORSE: "↓"}
TEX_MARK = {BETTER: "$\\uparrow$", WORSE: "$\\downarrow$"}


def paired_columns(table: Table) -> list[str]:
    return [*table.columns, "Avg."] if len(table.columns) > 1 else list(table.columns)


def _paired_text(p: Paired, k: int, n_exp: int, style: str) -> str:
    if p.n == 0:
        return "---" if style == "tex" else DASH
    text = f"{p.mean:+.{k}f}"
    if not math.isnan(p.low):
        text += f" [{p.low:+.{k}f}, {p.high:+.{k}f}]"
    mark = (TEX_MARK if style == "tex" else MARK).get(p.verdict)
    text += f" {mark}" if mark else ""
    return text + (f" (n={p.n})" if p.n < n_exp else "")


def _paired_rows(table: Table, style: str, paired: dict) -> list[list[str]]:
    n_exp, k = len(table.grid.seeds), table.digits
    rows = []
    for m in dict.fromkeys(key[0] for key in paired):
        name = _escape(display_name(m)) if style == "tex" else display_name(m)
        rows.append([name, *(_paired_text(paired.get((m, c), NO_PAIRS), k, n_exp, style)
                             for c in paired_columns(table))])
    return rows


def paired_blocks(table: Table) -> list[tuple[str, str, dict]]:
    """(header, caption, paired differences) of each paired table: vs fine-tuning, then the TRED
    rows vs the best baseline."""
    seeds = len(table.grid.seeds)
    how = (f"paired by seed (same seed = same training subset and augmentation stream), mean [95% "
           f"Student-t interval] over the {seeds} seeds")
    tail = "the interval excluding 0; no mark: not resolved (n = seeds paired when fewer; no interval with one pair)."
    blocks = []
    if table.paired:
        blocks.append(("Δ vs Fine-tune", f"Difference to fine-tuning (L2) in points, {how}; ↑ / ↓: better / "
                       f"worse than fine-tuning, {tail}", table.paired))
    if table.paired_best:
        best = display_name(table.best_baseline)
        blocks.append((f"Δ vs {best}", f"Difference of the TRED rows to the best baseline, {best} (the highest "
                       f"average of L2-SP, AT, DELTA and BSS in this table), in points, {how}; ↑ / ↓: better / "
                       f"worse than {best}, {tail}", table.paired_best))
    return blocks


def paired_caption(table: Table) -> str:
    return paired_blocks(table)[0][1] if paired_blocks(table) else ""


def to_markdown(table: Table) -> str:
    header = ["Method", *table.columns, "Avg.", "Gain vs FT"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + [":---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in _cells(table, "md")]
    out = [*lines, "", caption(table)]
    out += [n for n in (weights_caption(table), missing_note(table), health_note(table), provenance_note(table),
                        cost_note(table)) if n]
    for head, text, paired in paired_blocks(table):
        ph = [head, *paired_columns(table)]
        out += ["", "| " + " | ".join(ph) + " |", "|" + "|".join([":---"] + [":---:"] * (len(ph) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in _paired_rows(table, "md", paired)]
        out += ["", text]
    return "\n".join([*out, ""])


def to_latex(table: Table) -> str:
    header = ["Method", *map(_escape, table.columns), "Avg.", "Gain vs FT"]
    lines = [f"% {caption(table)}", f"% {missing_note(table)}",
             "\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    lines += [" & ".join(r) + " \\\\" for r in _cells(table, "tex")]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    for i, note in enumerate(n for n in (weights_caption(table), health_note(table), provenance_note(table),
                                         cost_note(table)) if n):
        lines.insert(2 + i, f"% {note}")
    for head, text, paired in paired_blocks(table):
        cols = paired_columns(table)
        lines += [f"% {text.replace('↑', 'up').replace('↓', 'down')}",
                  "\\begin{tabular}{l" + "c" * len(cols) + "}", "\\toprule",
                  " & ".join([_escape(head).replace("Δ", "$\\Delta$"), *map(_escape, cols)]) + " \\\\",
                  "\\midrule"]
        lines += [" & ".join(r) + " \\\\" for r in _paired_rows(table, "tex", paired)]
        lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines).replace(" (n=", "\\,(n=")


def to_csv_frame(table: Table) -> pd.DataFrame:
    """Numbers, not strings: one mean/std/n triple per column, then avg and gain."""
    s = table.summary
    out = pd.DataFrame({"method": table.grid.methods,
                        "name": [display_name(m) for m in table.grid.methods]})
    for c in table.columns:
        for part in ("mean", "std", "n"):
            out[f"{c} {part}"] = s[(c, part)].to_numpy()
    out["avg"] = s[("Avg.", "mean")].to_numpy()
    out["gain_vs_finetune"] = s[("Gain vs FT", "mean")].to_numpy()
    if table.paired:  # the paired table's columns, fine-tuning's own row empty
        for c in paired_columns(table):
            cells = [table.paired.get((m, c), NO_PAIRS) for m in table.grid.methods]
            for part in ("mean", "low", "high", "n"):
                out[f"{c} diff_vs_ft {part}"] = [getattr(p, part) if m != FINETUNE else math.nan
                                                 for m, p in zip(table.grid.methods, cells)]
            out[f"{c} diff_vs_ft verdict"] = [p.verdict if m != FINETUNE else "" for m, p in zip(table.grid.methods, cells)]
    if table.paired_best:  # the TRED rows against the best baseline (named in `best_baseline`)
        out["best_baseline"] = table.best_baseline
        for c in paired_columns(table):
            cells = [table.paired_best.get((m, c)) for m in table.grid.methods]
            for part in ("mean", "low", "high", "n"):
                out[f"{c} diff_vs_best {part}"] = [getattr(p, part) if p else math.nan for p in cells]
            out[f"{c} diff_vs_best verdict"] = [p.verdict if p else "" for p in cells]
    if "weights" in table.runs:
        out["weights"] = [" / ".join(sorted({w for w in table.runs.loc[table.runs.method == m, "weights"].dropna() if w}))
                          for m in table.grid.methods]
    return out
