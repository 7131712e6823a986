"""Keep a sweep's finished runs as small text records, to commit, rebuild its table from, or resume.

    python scripts/archive_runs.py outputs/sweeps/mini_table outputs/records/mini_table
    python scripts/make_table.py outputs/records/mini_table           # the same table, from the records
    cp -r outputs/records/mini_table/. outputs/sweeps/mini_table/     # resume: finished runs are skipped

`outputs/records/` is the one part of outputs/ that git keeps: the records behind the tables of
docs/results.md, so anyone can rebuild a table, or continue a sweep on another machine.

Copies, for every run directory with a completed or failed `result.json`, its `result.json`,
`config.yaml` and `metrics.csv` (and `.hydra/overrides.yaml`), plus the declared grid of the
sweep's `multirun.yaml` (its sweeper params and command-line overrides), into the same relative
paths under the archive; nothing else (no checkpoints, caches, W&B files or logs). Where the
data lay on this machine (`dataset.root`, an operational key: resume ignores it) is left out; a
result.json without `finished` (runs made before it existed) gets it from the file's time.
A run's identity is its config.yaml, so a sweep re-run over the restored records skips them
exactly as it skips runs it made itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omegaconf import OmegaConf  # noqa: E402

from tred.io import utc_stamp, write_json  # noqa: E402
from tred.tables.runs import run_dirs  # noqa: E402

FILES = ("result.json", "config.yaml", "metrics.csv", ".hydra/overrides.yaml")
LOCAL = ("dataset.root=", "hydra.", "cache_dir=", "reuse_from=")  # this machine's paths, not part of the grid


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
                shutil.copy2(d / name, target)  # with its time: tables date the runs by it
                if name == "config.yaml":
                    _strip_root(target)
                elif name == "result.json":
                    _stamp_finished(target)
                elif name.endswith("overrides.yaml"):
                    kept = [o for o in OmegaConf.load(target) if not str(o).startswith(LOCAL)]
                    OmegaConf.save(OmegaConf.create(kept), target)
        n += 1
    if (sweep / "multirun.yaml").is_file():
        hydra = OmegaConf.load(sweep / "multirun.yaml").hydra
        grid = {"hydra": {"sweeper": {"params": hydra.sweeper.get("params") or {}},
                          "overrides": {"task": [o for o in hydra.overrides.task if not o.startswith(LOCAL)]}}}
        dest.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(grid), dest / "multirun.yaml")
    return n


def _stamp_finished(path: Path) -> None:
    """A run made before result.json had `finished`: its time from the file's modification time,
    which the copy kept, so that the tables' dates survive git (which does not keep file times)."""
    res = json.loads(path.read_text())
    if res.get("finished"):
        return
    res["finished"] = utc_stamp(path.stat().st_mtime)
    _keeping_time(path, lambda: write_json(path, res))


def _strip_root(path: Path) -> None:
    cfg = OmegaConf.load(path)
    local = [key for key in ("dataset.root", "reuse_from") if OmegaConf.select(cfg, key) is not None]
    for key in local:
        OmegaConf.update(cfg, key, None)
    if local:
        _keeping_time(path, lambda: OmegaConf.save(cfg, path))


def _keeping_time(path: Path, rewrite) -> None:
    """Rewrite `path` and give it back its modification time (the run's, which the copy kept)."""
    stat = path.stat()
    rewrite()
    os.utime(path, (stat.st_atime, stat.st_mtime))


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
