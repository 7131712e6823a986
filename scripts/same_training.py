"""Did the runs of one sweep train what the runs of another trained? The premise of a table run
taking over a tuning run's training (`reuse_from`, docs/reliability.md), checked on runs that
both trained.

    python scripts/same_training.py TABLE_SWEEP TUNING_SWEEP

Every finished run of the first sweep is paired with the finished runs of the second whose config
differs only in what chooses the scoring and in operational keys (`config_diff(adoption=True)`,
tred/engine/checkpoint.py: the same pairing an adoption makes) and that saw as many training
images. For each pair the logged training rows (metrics.csv, stage `finetune`: every column but
the throughput) are compared cell by cell as written, that is bit for bit. One line per pair,
then a summary; exit 0 when every pair is identical, 1 when one differs or nothing pairs, 2 on
bad input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tred.engine.checkpoint import config_diff  # noqa: E402
from tred.io import read_json  # noqa: E402
from tred.tables.runs import run_dirs  # noqa: E402

SKIPPED = ("stage", "imgs_per_s")  # throughput differs between any two runs


def finished(sweep: Path) -> list[tuple[Path, dict, dict]]:
    """(run directory, config, result) of the completed runs under `sweep` that logged metrics."""
    out = []
    for d in run_dirs(sweep):
        if (d / "result.json").is_file() and (d / "config.yaml").is_file() and (d / "metrics.csv").is_file():
            result = read_json(d / "result.json")
            if result.get("status") == "completed":
                out.append((d, OmegaConf.to_container(OmegaConf.load(d / "config.yaml")), result))
    return out


def training_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return [{k: v for k, v in r.items() if k not in SKIPPED and not k.startswith("test")}
                for r in csv.DictReader(fh) if r.get("stage") == "finetune" and r.get("ce")]


def differing_cells(a: list[dict], b: list[dict]) -> int:
    """Cells that differ, a row missing from one side counting as all its cells."""
    extra = sum(len(r) for r in (a[len(b):] or b[len(a):]))
    return extra + sum(x.get(k) != y.get(k) for x, y in zip(a, b) for k in x.keys() | y.keys())


def pairs(first: Path, second: Path):
    """(run of first, run of second) for every run of the second whose training is the first's."""
    candidates = finished(second)
    for a, config, result in finished(first):
        for b, other, other_result in candidates:
            if other_result.get("train_size") == result.get("train_size") and not config_diff(
                    other, config, adoption=True):
                yield a, b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="e.g. a table's sweep directory")
    ap.add_argument("other", type=Path, help="e.g. the tuning sweep it could have adopted from")
    args = ap.parse_args(argv)
    for path in (args.sweep, args.other):
        if not path.is_dir():
            print(f"error: {path}: no such sweep directory", file=sys.stderr)
            return 2
    same = total = 0
    for a, b in pairs(args.sweep, args.other):
        ra, rb = training_rows(a), training_rows(b)
        diff = differing_cells(ra, rb)
        total, same = total + 1, same + (diff == 0 and bool(ra))
        cells = sum(len(r) for r in ra)
        verdict = "identical" if diff == 0 and ra else f"{diff} of {cells} cells differ"
        print(f"{a.relative_to(args.sweep)}  ~  {b.relative_to(args.other)}: {len(ra)} training rows, {verdict}")
    if total == 0:
        print("no run of the first sweep has a run of the second with the same training config")
        return 1
    print(f"{same} of {total} pairs trained identically")
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main())
