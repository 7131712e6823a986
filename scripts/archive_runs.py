"""Keep a sweep's finished runs as small text records, to commit, rebuild its table from, or resume.

    python scripts/archive_runs.py outputs/sweeps/mini_table outputs/records/mini_table
    python scripts/make_table.py outputs/records/mini_table           # the same table, from the records
    cp -r outputs/records/mini_table/. outputs/sweeps/mini_table/     # resume: finished runs are skipped

`outputs/records/` is the one part of outputs/ that git keeps: the records behind the tables of
docs/results.md, so anyone can rebuild a table, or continue a sweep on another machine.

Copies, for every run directory with a completed or failed `result.json`, its `result.json`,
`config.yaml` and `metrics.csv` (and `.hydra/overrides.yaml`), plus the sweep's `multirun.yaml`
(the declared grid), into the same relative paths under the archive; nothing else (no
checkpoints, caches, W&B files or logs). A run's identity is its config.yaml, so a sweep re-run
over the restored records skips them exactly as it skips runs it made itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tred.tables.runs import run_dirs  # noqa: E402

FILES = ("result.json", "config.yaml", "metrics.csv", ".hydra/overrides.yaml")


def archive(sweep: Path, dest: Path) -> int:
    """Copy the finished runs' records of `sweep` into `dest`; returns how many runs."""
    n = 0
    for d in run_dirs(sweep, ("result.json",)):
        try:
            status = json.loads((d / "result.json").read_text()).get("status")
        except (OSError, ValueError):
            continue
        if status not in ("completed", "failed"):
            continue
        for name in FILES:
            if (d / name).is_file():
                target = dest / d.relative_to(sweep) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d / name, target)
        n += 1
    if (sweep / "multirun.yaml").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep / "multirun.yaml", dest / "multirun.yaml")
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"error: {args.sweep} is not a sweep directory", file=sys.stderr)
        return 2
    n = archive(args.sweep, args.dest)
    print(f"archived {n} finished runs of {args.sweep} into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
