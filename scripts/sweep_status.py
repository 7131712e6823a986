"""How far a sweep is: run counts by state, the failed runs' reasons, and an ETA.

    python scripts/sweep_status.py outputs/sweeps/mini_table [--jobs N] [--recent-s S]

Reads only (writes nothing, takes no lock), so it is safe while the sweep runs. Each run
directory is in one state:

- running: its `run.lock` is held (a `flock`, seen in /proc/locks: runs on this machine), or it
  has no result.json and its metrics.csv or config.yaml changed in the last --recent-s seconds
  (default 300: a run on another machine logs a metrics row at least every few minutes);
- completed / failed: its result.json says so (a failed run's `error` is listed);
- interrupted: started (config.yaml) but none of the above: killed or stopped, no result;
  running the sweep again resumes it from its checkpoint;
- not started: declared by the sweep's multirun.yaml but without a run directory. The declared
  runs are the last command's grid (`tred.tables.runs.expected_grid`: methods x datasets x sample
  rates x seeds, an axis it does not name taking the values on disk) times every other key it
  sweeps. Hydra rewrites multirun.yaml at each command, so when several commands share one
  directory (a tuning's rounds beyond the edges) the runs on disk are counted with the last
  command's grid, and an earlier command's runs that never started are not known.

ETA = (running + interrupted + not started) x the median `wall_time_s` of the completed runs
/ --jobs (default $TRED_JOBS, else the number of runs running now, at least 1: a parallel
launcher keeps that many going). A running run counts as a whole one: an upper bound.
Bad input (no such directory, nothing in it) exits with status 2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tred.errors import TredError
from tred.io import read_json
from tred.methods import method_of_config
from tred.tables.runs import expected_grid, run_dirs, sweep_axes

STATES = ("completed", "running", "failed", "interrupted", "not started")
# Swept keys that the expected grid already spans (tred.tables.runs.expected_grid).
GRID_KEYS = ("method", "regularizer", "disentangle", "disentangle.parts", "dataset", "dataset.sample_rate", "seed")
RECENT_S = 300.0


@dataclass
class Status:
    counts: dict
    failed: list  # (run dir relative to the sweep, error)
    declared: int  # runs the sweep expects (grid x other swept keys)
    median_s: float | None  # median wall_time_s of the completed runs
    jobs: int
    remaining: int = field(init=False)
    eta_s: float | None = field(init=False)

    def __post_init__(self):
        self.remaining = self.counts["running"] + self.counts["interrupted"] + self.counts["not started"]
        self.eta_s = None if self.median_s is None else self.remaining * self.median_s / self.jobs


def held_flocks(proc_locks: Path = Path("/proc/locks")) -> set[tuple[int, int, int]]:
    """(device major, minor, inode) of every file with a FLOCK held on this machine (Linux)."""
    held = set()
    try:
        lines = proc_locks.read_text().splitlines()
    except OSError:
        return held
    for line in lines:
        parts = line.split()
        if "->" in parts or "FLOCK" not in parts:  # "->": a waiter, not a holder
            continue
        for p in parts:
            bits = p.split(":")
            if len(bits) == 3:
                try:
                    held.add((int(bits[0], 16), int(bits[1], 16), int(bits[2])))
                except ValueError:
                    pass
    return held


def lock_held(lock: Path, held: set) -> bool:
    try:
        st = lock.stat()
    except OSError:
        return False
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held


def _value(v):
    """Swept values are strings (`0.001`, `true`); config values are typed: compare them alike."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _select(cfg: dict | None, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _state(d: Path, result: dict | None, held: set, now: float, recent_s: float) -> str:
    if lock_held(d / "run.lock", held):
        return "running"
    if isinstance(result, dict) and result.get("status") in ("completed", "failed"):
        return result["status"]
    mtimes = [p.stat().st_mtime for p in (d / "metrics.csv", d / "config.yaml") if p.is_file()]
    return "running" if mtimes and now - max(mtimes) <= recent_s else "interrupted"


def sweep_status(sweep_dir: Path, jobs: int | None = None, recent_s: float = RECENT_S, now: float | None = None,
                 held: set | None = None) -> Status:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise TredError(f"sweep directory {sweep_dir} does not exist; pass one, e.g. outputs/sweeps/mini_table")
    now = time.time() if now is None else now
    held = held_flocks() if held is None else held
    axes = sweep_axes(sweep_dir)
    dirs = run_dirs(sweep_dir)
    if not dirs and not axes:
        raise TredError(f"no runs under {sweep_dir} and no multirun.yaml: not a sweep directory "
                        "(pass hydra.sweep.dir of a sweep, e.g. outputs/sweeps/mini_table)")
    runs = []
    for d in dirs:
        cfg = OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) if (d / "config.yaml").is_file() else None
        try:
            result = read_json(d / "result.json") if (d / "result.json").is_file() else None
        except (OSError, ValueError):
            result = None  # half-written by hand or corrupt: the run has no usable result
        runs.append((d, cfg, result))
    # Another key of the runs: swept by the last command, or one it set to a single value that runs
    # of earlier commands into the same directory had otherwise (a tuning's rounds beyond the edges)
    extra = {k: v for k, v in axes.items() if k not in GRID_KEYS
             and (len(v) > 1 or len({repr(_value(_select(cfg, k))) for _, cfg, _ in runs if cfg}) > 1)}
    rows, counts, failed, walls = [], dict.fromkeys(STATES, 0), [], []
    for d, cfg, result in runs:
        src = result if isinstance(result, dict) and "method" in result else None
        if src or cfg:  # else nothing says which run this is (a corrupt result.json alone)
            rows.append((src["method"] if src else method_of_config(cfg),
                         src["dataset"] if src else cfg["dataset"].get("label") or cfg["dataset"]["name"],
                         float(src["sample_rate"] if src else cfg["dataset"]["sample_rate"]),
                         int(src["seed"] if src else cfg["seed"]),
                         *(_value(_select(cfg, k)) if cfg else None for k in extra)))
        state = _state(d, result, held, now, recent_s)
        counts[state] += 1
        if state == "failed":
            failed.append((str(d.relative_to(sweep_dir)), str(result.get("error") or "no error recorded")))
        if state == "completed" and isinstance(result.get("wall_time_s"), (int, float)):
            walls.append(float(result["wall_time_s"]))
    # Expected: the grid the last command declared (multirun.yaml; an axis it leaves out takes the
    # values on disk) united with every run on disk. Hydra rewrites multirun.yaml at each command,
    # so runs an earlier command declared but never started are not known here.
    columns = ["method", "dataset", "sample_rate", "seed"]
    seen = expected_grid(pd.DataFrame([r[:4] for r in rows], columns=columns), sweep_dir)
    last = expected_grid(pd.DataFrame(columns=columns), sweep_dir)
    dims = [last.methods or seen.methods, last.datasets or seen.datasets,
            [float(r) for r in last.rates or seen.rates], [int(s) for s in last.seeds or seen.seeds],
            *([_value(x) for x in v] for v in extra.values())]
    declared = set(itertools.product(*(dim or [None] for dim in dims)))
    found = set(rows)
    counts["not started"] = len(declared - found)
    if jobs is None:  # the runs going now are the launcher's parallel jobs
        jobs = max(1, counts["running"])
    return Status(counts, failed, len(declared | found), statistics.median(walls) if walls else None, jobs)


def duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m{s % 60:02d}s" if h else f"{m}m{s % 60:02d}s"


def report(sweep_dir: Path, st: Status) -> str:
    lines = [f"{sweep_dir}: {st.declared} runs expected"]
    notes = {"interrupted": "  (no result, not running: run the sweep again to resume)"}
    lines += [f"  {state:<12} {st.counts[state]:>4}{notes.get(state, '') if st.counts[state] else ''}"
              for state in STATES]
    if st.failed:
        lines.append("failed:")
        lines += [f"  {d}: {error.splitlines()[0] if error else ''}" for d, error in st.failed]
    if st.remaining == 0:
        lines.append("ETA: nothing left to run")
    elif st.eta_s is None:
        lines.append(f"ETA: unknown ({st.remaining} remaining, no completed run to time yet)")
    else:
        lines.append(f"ETA: {duration(st.eta_s)} ({st.remaining} remaining x median {st.median_s:.0f} s "
                     f"per completed run / {st.jobs} job{'s' if st.jobs > 1 else ''})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path, help="a sweep directory, e.g. outputs/sweeps/mini_table")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs in parallel (default $TRED_JOBS, else the runs running now)")
    ap.add_argument("--recent-s", type=float, default=RECENT_S,
                    help="a run without result.json whose metrics.csv changed this recently is running")
    args = ap.parse_args(argv)
    try:
        env = os.environ.get("TRED_JOBS")
        jobs = args.jobs if args.jobs is not None else int(env) if env else None
    except ValueError:
        print(f"error: TRED_JOBS={os.environ['TRED_JOBS']!r} is not a number; set it or pass --jobs", file=sys.stderr)
        return 2
    if jobs is not None and jobs < 1:
        print(f"error: --jobs must be >= 1, got {jobs}", file=sys.stderr)
        return 2
    try:
        st = sweep_status(args.sweep_dir, jobs, args.recent_s)
    except TredError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(args.sweep_dir, st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
