"""Mean validation accuracy per method and weight over the runs of a tuning sweep; optionally
the chosen weights written as a config that table experiments read.

    python scripts/tune_summary.py <sweep dir> [<key, e.g. regularizer.tred.alpha>] [--write FILE]

Without a key, the axis is each run's main weight (`Regularizer.weight_key` of its regularizer:
fine-tuning's weight_decay, L2-SP's alpha, AT's beta, DELTA's alpha, BSS's eta, TRED's alpha),
read from the run's own config.yaml, so one sweep over `weight_scale` tunes every method at
once. Reads result.json + config.yaml of every run with `eval_split: val` (a test-split result
stops it). The mean is over datasets and seeds; a value with a failed or missing run is never
chosen (a weight that diverges somewhere is not a good default; a value with fewer runs than the
sweep's fullest is missing some). The written file's header names the sweep (relative to the
repository root; by its name alone when it lies elsewhere), the runs' seeds, code commits,
thread counts and CPU instruction sets (result.json `code_version`, `threads`,
`machine.cpu_capability`). Per method the value with the
highest mean wins; ties go to the value nearest the published weight (weight_scale nearest 1).

`--into PAGE#SECTION` writes the same scores as a markdown table into that generated section of a
page (docs/results.md; tred/tables/page.py): a row per method, a column per `weight_scale`, the
chosen weight in bold.

`--write FILE` writes each method's chosen weight, the scores as comments and a `weights_note`
that tables print in their caption (configs/tuned/*.yaml; the table experiments include it in
their defaults list): under `regularizer_overrides.<regularizer>` when the sweep tunes one method
of that regularizer, else under `method_overrides.<method>.<regularizer>` (the TRED rows, which
share regularizer `tred`, get a weight each). `--update TUNED_FILE` (with `--write`; it may be the
same file) starts from an earlier tuned file: the rows this sweep tunes replace theirs, every other
row keeps its weight, and the earlier header is kept below the new scores (re-tuning some rows:
a new method, or the rows an earlier tuning chose at an edge of its grid).
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tred.errors import TredError
from tred.io import atomic_write, read_json
from tred.kernels import settings as kernel_settings
from tred.methods import CATALOGUE, display_name, method_of_config, method_order
from tred.tables.page import parse_target, read_section, write_section
from tred.tables.runs import TableError, check_kernels, main_weights, run_dirs

WEIGHT = "weight"
ROOT = Path(__file__).resolve().parents[1]  # the repository: the written header names sweeps relative to it


def main_weight(cfg) -> tuple[str, str, float] | None:
    """(regularizer, key, value) of a single-regularizer run's main weight, else None."""
    weights = main_weights(cfg)
    return weights[0] if len(weights) == 1 and len(cfg.get("regularizer") or {}) == 1 else None


def collect(sweep: Path, key: str | None) -> pd.DataFrame:
    rows = []
    for d in run_dirs(sweep, ("config.yaml",)):
        cfg = OmegaConf.to_container(OmegaConf.load(d / "config.yaml"))
        res_path = d / "result.json"
        result = read_json(res_path) if res_path.is_file() else {"status": "unfinished"}
        if res_path.is_file() and result.get("eval_split") != "val":
            sys.exit(f"error: {res_path} was not evaluated on a validation split (eval_split != val): "
                     "tuning never reads the test split")
        if key is None:
            weight = main_weight(cfg)
            if weight is None:
                continue
            reg, wkey, value = weight
        else:
            reg, wkey, value = None, key, OmegaConf.select(OmegaConf.create(cfg), key)
        method = result.get("method") or method_of_config(cfg)
        rows.append({"method": method, "regularizer": reg, "key": wkey, WEIGHT: value,
                     "scale": cfg.get("weight_scale", 1.0),
                     "dataset": cfg["dataset"].get("label") or cfg["dataset"]["name"],
                     "seed": cfg["seed"], "status": result.get("status"), "code": code_label(result),
                     "threads": result.get("threads"),
                     "cpu": (result.get("machine") or {}).get("cpu_capability"),
                     "kernels": kernel_settings(result.get("kernels"), result.get("machine")),
                     "run_dir": str(d.relative_to(sweep)),
                     "val_acc": result.get("test_acc") if result.get("status") == "completed" else math.nan})
    if not rows:
        sys.exit(f"error: no tuning runs under {sweep}")
    return pd.DataFrame(rows)


def code_label(result: dict) -> str | None:
    """The run's code commit (short; `+dirty` with uncommitted changes), from result.json."""
    version = result.get("code_version") or {}
    if not version.get("commit"):
        return None
    return version["commit"][:7] + ("+dirty" if version.get("dirty") else "")


def provenance(df: pd.DataFrame) -> str:
    """Which code, thread counts and CPU instruction sets the runs ran with (a resumed sweep can
    mix them)."""
    def counts(col):
        known = df[col].dropna()
        show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731 (threads: 1, not 1.0)
        parts = [f"{show(v)} ({n})" for v, n in known.value_counts().sort_index().items()]
        if len(known) < len(df):
            parts.append(f"not recorded ({len(df) - len(known)})")
        return ", ".join(parts) or "not recorded"
    return (f"code {counts('code')}; threads per run {counts('threads')}; CPU kernels {counts('cpu')}; "
            f"kernel settings {counts('kernels')}")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, weight): mean validation accuracy per dataset, overall mean, failures."""
    groups = df.groupby(["method", WEIGHT])
    table = df.groupby(["method", WEIGHT, "dataset"])["val_acc"].mean().unstack("dataset")
    table = table.reindex(sorted(groups.groups))  # a value whose runs all failed stays, as nan
    table["mean"] = groups["val_acc"].mean()
    # a value with fewer runs than the sweep's fullest (a seed or dataset not run yet) counts its
    # missing runs as not completed: every value is compared over the same runs
    runs = groups.size().reindex(table.index, fill_value=0)
    table["missing"] = runs.max() - runs
    table["not_completed"] = (df[df.status != "completed"].groupby(["method", WEIGHT]).size()
                              .reindex(table.index, fill_value=0)) + table["missing"]
    table["scale"] = df.groupby(["method", WEIGHT])["scale"].first()
    return table


def choose(table: pd.DataFrame) -> dict[str, float]:
    """method -> the weight with the highest mean validation accuracy among complete values."""
    chosen = {}
    for method, sub in table.groupby(level="method"):
        ok = sub[(sub["not_completed"] == 0) & sub["mean"].notna()]
        if ok.empty:
            continue
        best = ok["mean"].max()
        top = ok[ok["mean"] == best]
        nearest = (top["scale"].astype(float).map(lambda s: abs(math.log10(s)))).idxmin()
        chosen[method] = float(nearest[1])
    return chosen


def at_edge(table: pd.DataFrame, chosen: dict) -> list[str]:
    """Methods whose chosen weight is the smallest or largest value tried: the optimum may lie
    outside the grid."""
    out = []
    for method, value in chosen.items():
        weights = [float(w) for w in table.loc[method].index]
        if len(weights) > 1 and value in (min(weights), max(weights)):
            out.append(method)
    return out


def beyond_edges(df: pd.DataFrame, table: pd.DataFrame, chosen: dict,
                 max_values: int | None = None) -> list[tuple[str, str]]:
    """What the tuning runs next, as (the method's preset, its `method=` option; `weight_scale`
    text) pairs. First any value with unfinished or missing runs (an interrupted round: it is
    finished before anything is judged); else, for each method chosen at an edge of its own grid,
    the next value beyond that edge, one grid step further (the ratio of the edge value to its
    neighbour: a decade on the protocol's grids), unless the method has `max_values` values already."""
    presets = {m.name: m.preset for m in CATALOGUE}

    def option(method):
        if method not in presets:
            sys.exit(f"error: {method} has no preset in configs/method/ (tred/methods.py CATALOGUE): "
                     "cannot say which method= to run next")
        return presets[method]

    text = lambda scale: repr(float(f"{float(scale):.6g}"))  # noqa: E731 (0.01, 100.0: as the grid writes them)
    unfinished = df[~df["status"].isin(["completed", "failed"])].groupby(["method", WEIGHT]).size()
    pending = table[(table["missing"] > 0) | table.index.isin(list(unfinished.index))]
    if len(pending):
        return [(option(m), text(row["scale"])) for (m, _), row in pending.iterrows()]
    out = []
    for method in at_edge(table, chosen):
        scales = sorted({float(s) for s in table.loc[method]["scale"]})
        if max_values is not None and len(scales) >= max_values:
            continue
        chosen_scale = float(table.loc[(method, chosen[method]), "scale"])
        step = scales[0] / scales[1] if chosen_scale == scales[0] else scales[-1] / scales[-2]
        out.append((option(method), text(chosen_scale * step)))
    return out


def score_text(row) -> str:
    """A weight's score as the written file and the page show it (a row of `summarize`)."""
    if row["not_completed"] > row["missing"]:
        return "failed"
    return f"{int(row['missing'])} of its runs missing" if row["missing"] else f"{row['mean']:.2f}"


def tuned_yaml(df: pd.DataFrame, table: pd.DataFrame, chosen: dict, sweep: Path,
               base: Path | None = None) -> str:
    """The tuned config: each chosen weight, the scores as comments. `base`: an earlier tuned file
    whose rows this sweep does not tune keep their weights (the rows it tunes replace theirs); its
    header is kept below the new one, so the file still says where every weight came from."""
    regs = df.drop_duplicates("method").set_index("method")[["regularizer", "key"]]
    earlier = OmegaConf.to_container(OmegaConf.load(base)) if base else {}
    overrides: dict = earlier.get("regularizer_overrides") or {}
    per_method: dict = earlier.get("method_overrides") or {}
    shared = regs["regularizer"].value_counts()
    per_method_regs = {reg for entry in per_method.values() for reg in entry}
    for method, value in chosen.items():
        reg, key = regs.at[method, "regularizer"], regs.at[method, "key"]
        if shared[reg] > 1 or reg in per_method_regs:  # several methods of one regularizer (the TRED rows)
            per_method.setdefault(method, {}).setdefault(reg, {})[key] = value
        else:
            overrides.setdefault(reg, {})[key] = value
    n_val = df.groupby("dataset").size()
    runs = (f"over {len(df)} runs ({', '.join(f'{d}: {n}' for d, n in n_val.items())}; seeds "
            f"{', '.join(str(s) for s in sorted(df['seed'].unique()))}).")
    if base:
        head = [f"# Written by scripts/tune_summary.py from {sweep_label(sweep)} on {datetime.date.today()},",
                f"# updating {sweep_label(base)}: the rows scored below were re-tuned in that sweep; every other",
                "# row keeps its earlier weight (the earlier header follows the scores). Re-run the sweeps to",
                "# change it, do not edit by hand. Each re-tuned row's weight is the one with the highest mean",
                "# validation accuracy (held-out training images; the test split is never read)",
                f"# {runs}"]
    else:
        head = [f"# Written by scripts/tune_summary.py from {sweep_label(sweep)} on {datetime.date.today()}: "
                "re-run the",
                "# tuning sweep to change it, do not edit by hand. Each method's weight is the one with the",
                "# highest mean validation accuracy (held-out training images; the test split is never read)",
                f"# {runs}"]
    lines = [
        "# @package _global_",
        *head,
        f"# The runs' {provenance(df)}.",
        "# Mean validation accuracy (%) per weight, chosen one marked *:",
    ]
    for method, sub in table.groupby(level="method"):
        cells = []
        for (_, w), row in sub.iterrows():
            mark = "*" if chosen.get(method) == float(w) else ""
            cells.append(f"{w:g} {score_text(row)}{mark}")
        edge = " (at the edge of the grid)" if method in at_edge(table, chosen) else ""
        lines.append(f"#   {method} {regs.at[method, 'key']}: " + " | ".join(cells) + edge)
    note = ("Weights chosen on held-out training data, never the test split (highest mean validation "
            f"accuracy over the same relative grid for every method, sweep `{df_sweep_name(sweep)}`).")
    if base:
        lines.append(f"# The earlier {sweep_label(base)}, before this update:")
        lines += [f"# | {line.lstrip('#').strip()}".rstrip() for line in base.read_text().splitlines()
                  if line.startswith("#") and "@package" not in line]
        rows = ", ".join(method_order(set(chosen)))
        note = f"{earlier.get('weights_note', '').strip()} Re-tuned in sweep `{df_sweep_name(sweep)}`: {rows}.".strip()
    body = {"weights_note": note, "regularizer_overrides": overrides}
    if per_method:
        body["method_overrides"] = per_method
    body = OmegaConf.to_yaml(OmegaConf.create(body))
    return "\n".join(lines) + "\n" + body


def to_markdown(df: pd.DataFrame, table: pd.DataFrame, chosen: dict) -> str:
    """The scores as a page table: mean validation accuracy (%) per method and `weight_scale`
    (x the weight each run started from: the published one, or the smaller budget's choice)."""
    scales = sorted({float(s) for s in table["scale"]})
    keys = df.drop_duplicates("method").set_index("method")["key"]
    edge = set(at_edge(table, chosen))
    head = ["Method (weight)", *(f"x{s:g}" for s in scales), "chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + [":---:"] * (len(head) - 1)) + "|"]
    for method in method_order(set(table.index.get_level_values("method"))):
        sub = table.loc[method]
        cells = []
        for scale in scales:
            row = sub[sub["scale"].astype(float) == scale]
            if row.empty:
                cells.append("")
                continue
            weight, r = row.index[0], row.iloc[0]
            text = score_text(r)
            cells.append(f"**{text}**" if chosen.get(method) == float(weight) else text)
        pick = f"{chosen[method]:g}" + (" (edge)" if method in edge else "") if method in chosen else "none"
        lines.append("| " + " | ".join([f"{display_name(method)} `{keys[method]}`", *cells, pick]) + " |")
    seeds = ", ".join(str(s) for s in sorted(df["seed"].unique()))
    lines += ["", f"Mean validation accuracy (%) over seeds {seeds} (held-out training images, never the "
              "test split); x: `weight_scale`, the multiple of the weight each run started from; bold: "
              "the chosen weight (the highest mean; edge: the smallest or largest value tried). "
              f"{len(df)} runs; {provenance(df)}."]
    return "\n".join(lines) + "\n"


def sweep_label(sweep: Path) -> str:
    """The sweep directory as the written file names it: relative to the repository root, else
    (a sweep kept elsewhere) its name alone; never an absolute path of this machine."""
    path = sweep.resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def df_sweep_name(sweep: Path) -> str:
    name = sweep.name
    for p in sweep.rglob("result.json"):
        name = read_json(p).get("sweep", name)
        break
    return name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("key", nargs="?", default=None,
                    help="config key of the swept value (default: each run's main regularizer weight)")
    ap.add_argument("--write", type=Path, default=None, help="write the chosen weights as a config here")
    ap.add_argument("--update", type=Path, default=None, metavar="TUNED_FILE",
                    help="with --write: start from this tuned file (it may be the --write file itself): "
                         "the rows this sweep tunes replace theirs, the others keep their weights")
    ap.add_argument("--into", default=None, metavar="PAGE#SECTION",
                    help="also write the scores into this generated section of a markdown page")
    ap.add_argument("--beyond-edges", action="store_true",
                    help="print what the tuning runs next, one `method=<option> weight_scale=<value>` "
                         "per line (scripts/benchmark.py reads it): the values with unfinished runs, "
                         "else for each method chosen at an edge of its grid the next value beyond "
                         "that edge; nothing when every choice is inside its grid")
    ap.add_argument("--max-values", type=int, default=None,
                    help="with --beyond-edges: extend no method that has this many values already")
    ap.add_argument("--allow-mixed", action="store_true",
                    help="pool runs of different kernel settings (trainer.kernels, CPU code paths, threads)")
    args = ap.parse_args(argv)
    if not args.sweep_dir.is_dir():
        sys.exit(f"error: {args.sweep_dir} does not exist; run the tuning sweep first")
    target = None
    if args.into:
        try:
            target = parse_target(args.into)
            read_section(*target)
        except TredError as exc:
            sys.exit(f"error: {exc}")
    df = collect(args.sweep_dir, args.key)
    if not args.allow_mixed:
        try:
            check_kernels(df, args.sweep_dir)
        except TableError as exc:
            sys.exit(f"error: {exc}")
    table = summarize(df)
    chosen = choose(table)
    if args.beyond_edges:
        for option, scale in beyond_edges(df, table, chosen, args.max_values):
            print(f"method={option} weight_scale={scale}")
        return 0
    shown = table.drop(columns="scale").round(2)
    shown.insert(len(shown.columns), "chosen", ["*" if chosen.get(m) == float(w) else "" for m, w in shown.index])
    print(shown.to_markdown())
    print(f"{len(df)} runs, seeds {', '.join(str(s) for s in sorted(df['seed'].unique()))}; {provenance(df)}")
    edge = at_edge(table, chosen)
    if edge:
        print(f"note: chosen at the edge of the grid (the best weight may lie outside it): {', '.join(edge)}")
    unresolved = sorted(set(df["method"]) - set(chosen))
    if unresolved:
        print(f"warning: no complete value for {', '.join(unresolved)} (failed or unfinished runs)", file=sys.stderr)
    if args.write:
        if args.key is not None:
            sys.exit("error: --write needs the default axis (each method's main weight), not a key")
        if unresolved:
            sys.exit(f"error: not writing {args.write}: finish or fix the runs of {', '.join(unresolved)} first")
        if args.update is not None and not args.update.is_file():
            sys.exit(f"error: --update {args.update}: no such tuned file")
        text = tuned_yaml(df, table, chosen, args.sweep_dir, args.update)
        args.write.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.write, lambda fh: fh.write(text))
        print(f"wrote {args.write}")
    if target:
        command = " ".join(["scripts/tune_summary.py", *map(str, argv if argv is not None else sys.argv[1:])])
        write_section(*target, f"_Generated by `{command}`._\n\n{to_markdown(df, table, chosen)}")
        print(f"wrote section {target[1]!r} of {target[0]}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as exc:  # bad input: its one line, exit 2
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            sys.exit(2)
        raise
