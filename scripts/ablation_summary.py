"""Validation accuracy of each variant of an ablation sweep, paired by seed against control rows.

    python scripts/ablation_summary.py <sweep dir> [--against l2 tred-full ...] [--out FILE.md]

A *variant* is a run's method plus the overrides that name its run directory
(`<method>/<dataset>/sr<rate>/seed<seed>[/<overrides>]`, e.g.
`tred-max_mmd_min_mi regularizer.tred.channel_weights=attention`), so every command that runs into
the sweep directory with one more override adds rows. Only validation runs are read
(`dataset.validation=true`, result.json `eval_split: val`); a test-split result stops it, so an
ablation never looks at the test split. Per variant: mean ± std of the validation accuracy over
seeds, the paired difference to each `--against` variant (same seed = same training subset and
held-out images) with its 95% interval (tred/tables/stats.py), and the mean stage-1 checks of the TRED
runs (relevant head, irrelevant probe, source probe, reference gap, stage-1 time / fine-tuning
time).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from tred.io import atomic_write, read_json
from tred.methods import is_tred
from tred.tables.runs import run_dirs
from tred.tables.stats import paired_difference

CHECKS = {"relevant head": "disentangle_relevant_", "irrelevant probe": "disentangle_irrelevant_probe_",
          "source probe": "source_probe_"}


def variant_of(run_dir: Path, sweep: Path) -> tuple[str, str]:
    """(variant label, dataset) from `<method>/<dataset>/sr<rate>/seed<seed>[/<overrides>]`."""
    parts = run_dir.relative_to(sweep).parts
    if len(parts) < 4 or not parts[3].startswith("seed"):
        raise ValueError(f"{run_dir} is not <method>/<dataset>/sr<rate>/seed<seed>[/<overrides>]")
    label = " ".join([parts[0], *(o for p in parts[4:] for o in split_overrides(p))])
    return label, parts[1]


def split_overrides(dirname: str) -> list[str]:
    """`a=1,b=[x,y]` -> [`a=1`, `b=[x,y]`]: Hydra's override_dirname joins with commas, and list
    values keep theirs."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(dirname):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(dirname[start:i])
            start = i + 1
    return [*out, dirname[start:]]


def collect(sweep: Path) -> pd.DataFrame:
    rows = []
    for path in (d / "result.json" for d in run_dirs(sweep, ("result.json",))):
        res = read_json(path)
        if res.get("eval_split") != "val":
            sys.exit(f"error: {path} was not evaluated on a validation split (eval_split != val): "
                     "ablations never read the test split")
        variant, dataset = variant_of(path.parent, sweep)
        done = res.get("status") == "completed"
        row = {"variant": variant, "dataset": dataset, "seed": res["seed"], "status": res.get("status"),
               "val_acc": res.get("test_acc") if done else math.nan}
        for name, prefix in CHECKS.items():
            vals = [v for k, v in res.items() if k.startswith(prefix) and k.endswith("_acc")]
            row[name] = float(vals[0]) if vals else math.nan  # percent
        row["reference gap"] = res.get("disentangle_reference_gap", math.nan)
        # TRED's stage 1 at what it costs a run that finds no cache (as in the tables' cost line);
        # older runs have only the time the run spent, where a cache hit costs nothing. Other
        # methods have no stage 1: their stage1_time_s is set-up (DELTA's channel attention)
        s1 = res.get("stage1_compute_time_s", res.get("stage1_time_s"))
        ft = res.get("finetune_time_s")
        tred_run = is_tred(str(res.get("method", "")))
        row["stage 1 / fine-tuning"] = s1 / ft if tred_run and s1 and ft else math.nan
        rows.append(row)
    if not rows:
        sys.exit(f"error: no runs with a result.json under {sweep}")
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, against: list[str]) -> pd.DataFrame:
    out = []
    for (dataset, variant), sub in df.groupby(["dataset", "variant"], sort=False):
        acc = sub.set_index("seed")["val_acc"]
        row = {"dataset": dataset, "variant": variant, "n": int(acc.notna().sum()),
               "not completed": int((sub.status != "completed").sum()),
               "val acc": f"{acc.mean():.2f} ± {acc.std():.2f}" if acc.notna().sum() > 1 else f"{acc.mean():.2f}"}
        for ref in against:
            base = df[(df.variant == ref) & (df.dataset == dataset)].set_index("seed")["val_acc"]
            if ref == variant or base.empty:
                row[f"vs {ref}"] = ""
                continue
            p = paired_difference(acc.to_dict(), base.to_dict())
            ci = "" if math.isnan(p.low) else f" [{p.low:+.2f}, {p.high:+.2f}]"
            row[f"vs {ref}"] = f"{p.mean:+.2f}{ci} (n={p.n})"
        for name in [*CHECKS, "reference gap", "stage 1 / fine-tuning"]:
            v = sub[name].mean()
            row[name] = "" if math.isnan(v) else f"{v:.2f}" if name.startswith("stage") else f"{v:.1f}"
        out.append(row)
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--against", nargs="+", default=["l2"],
                    help="variants every row is paired with (default: fine-tuning, `l2`)")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    df = collect(args.sweep)
    missing = [a for a in args.against if a not in set(df.variant)]
    if missing:
        sys.exit(f"error: --against {' '.join(missing)}: no such variant in {args.sweep}; "
                 f"variants: {', '.join(sorted(set(df.variant)))}")
    md = to_markdown(summarize(df, args.against))
    print(md, end="")
    if args.out:
        atomic_write(args.out, lambda f: f.write(md))


if __name__ == "__main__":
    main()
