"""Reading a sweep directory: one row per run directory, and the grid the sweep expects.

`load_runs` reads every run directory's result.json (or its config.yaml alone: an unfinished
run) and refuses a directory that cannot give an honest table: empty, runs of several sweeps or
experiments mixed, a corrupt result.json, a tuning run scored on validation data.

The expected grid (methods x datasets x rates x seeds, `expected_grid`) is what the sweep
declared in its multirun.yaml together with everything found on disk, so a run that failed, was
interrupted or never started shows as a missing cell or a seed count, never as a silently
smaller table.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tred.errors import TredError
from tred.io import read_json, utc_stamp
from tred.kernels import settings as kernel_settings
from tred.methods import method_name, method_of_config, method_order

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KEY = ["method", "dataset", "sample_rate", "seed"]
# config.yaml keys that must agree between the runs of one table (the rest are sweep axes).
SHARED_KEYS = ("sweep_name", "backbone", "trainer")
NOT_SHARED = ("threads", "num_workers", "device")
RUN_FILES = ("config.yaml", "result.json")


class TableError(TredError):
    """The sweep directory cannot give an honest table (empty, mixed, corrupt)."""


def is_run_file(path: Path, sweep_dir: Path) -> bool:
    """Not Hydra's .hydra/ copies nor W&B's offline-run files."""
    parts = path.relative_to(sweep_dir).parts[:-1]
    return not any(p.startswith(".") or p == "wandb" for p in parts)


def run_dirs(sweep_dir: Path, files: tuple[str, ...] = RUN_FILES) -> list[Path]:
    """The run directories under `sweep_dir` (those holding one of `files`), sorted."""
    return sorted({p.parent for name in files for p in sweep_dir.rglob(name) if is_run_file(p, sweep_dir)})


def load_runs(sweep_dir: str | Path, allow_mixed: bool = False) -> pd.DataFrame:
    """One row per run directory (result.json, or config.yaml only = unfinished). Completed runs
    of different kernel settings (`kernels`: mode, code paths, threads) are refused unless
    `allow_mixed` (`check_kernels`)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise TableError(f"sweep directory {sweep_dir} does not exist; run the sweep first "
                         "(e.g. `python scripts/train.py -m experiment=mini_table`)")
    rows, configs = [], {}
    for d in run_dirs(sweep_dir):
        cfg = OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) if (d / "config.yaml").is_file() else None
        if cfg is not None:
            configs[d] = cfg
        if (d / "result.json").is_file():
            rows.append(_read_result(d / "result.json"))
            if cfg is not None:
                rows[-1]["weights"], rows[-1]["weights_note"] = run_weights(cfg), cfg.get("weights_note") or ""
        elif cfg is not None:
            dataset = cfg["dataset"].get("label") or cfg["dataset"]["name"]
            rows.append({"method": method_of_config(cfg), "dataset": dataset,
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
    if not allow_mixed:
        check_kernels(runs, sweep_dir)
    return runs


def check_kernels(runs: pd.DataFrame, where: Path | str, listed: int = 3) -> None:
    """Numbers computed on different CPU code paths or thread counts differ by up to points
    (tred/kernels.py): a table or a tuning choice pools them only when told to (--allow-mixed)."""
    if "kernels" not in runs:
        return
    done = runs[runs["status"] == "completed"]
    groups = done.groupby("kernels")["run_dir"].apply(list)
    if len(groups) < 2:
        return
    listing = "; ".join(f"{setting}: {len(dirs)} run(s), e.g. {', '.join(dirs[:listed])}"
                        for setting, dirs in groups.items())
    raise TableError(f"runs in {where} were computed with different kernel settings ({listing}); re-run "
                     "the odd ones in one setting (trainer.kernels, trainer.threads) or pass --allow-mixed "
                     "to pool them anyway")


def main_weights(cfg: dict) -> list[tuple[str, str, float]]:
    """(regularizer, key, value) of the main weight (`Regularizer.weight_key`) of each
    regularizer in a run's config, e.g. [("l2sp", "alpha", 0.1)]."""
    # Function-local only to defer torch, which tred.regularizers imports: importing this module
    # (scripts/sweep_status.py never needs a weight) stays torch-free. There is no import cycle.
    from tred.regularizers import REGISTRY

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
                                   "stage1_compute_time_s", "finetune_time_s", "disentangle_reference_gap",
                                   "attempts", "trained_in", "trained_time_s"]}
    warnings = res.get("warnings") or []
    out["warnings"] = "; ".join(map(str, warnings)) if isinstance(warnings, list) else str(warnings)
    versions = dict(res.get("versions") or {})
    code = res.get("code_version") or {}
    if code.get("commit"):
        versions["code"] = code["commit"][:10] + ("+dirty" if code.get("dirty") else "")
    if (res.get("machine") or {}).get("cpu_capability"):
        versions["cpu"] = res["machine"]["cpu_capability"]  # CPU kernels: results may differ between them
    out["versions"] = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) if versions else ""
    out["kernels"] = kernel_settings(res.get("kernels"), res.get("machine"))
    out["finished"] = finished_date(res, path)
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
                    f"({', '.join(map(str, diff))}) between {first_dir} and {d}; keep one experiment per sweep "
                    "directory")
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
    """The method name (`tred.methods.method_name`) a `method=<preset>` option selects, read
    from the preset's defaults list and settings."""
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
    datasets = axes.get("dataset.label") or axes.get("dataset", [])  # a label names the dataset in tables
    rates = [float(r) for r in axes.get("dataset.sample_rate", [])]
    seeds = [int(s) for s in axes.get("seed", [])]

    def union(declared, found):
        return list(dict.fromkeys([*declared, *sorted(set(found) - set(declared))]))

    return Grid(method_order(union(methods, runs["method"])), union(datasets, runs["dataset"]),
                sorted(union(rates, runs["sample_rate"])), union(seeds, runs["seed"]))


def finished_date(res: dict, path: Path) -> str:
    """The day a run ended (UTC): result.json's `finished`, else (runs made before it existed)
    the file's modification time, which a copy with its times (archive_runs.py) keeps but git does not."""
    stamp = res.get("finished")
    if isinstance(stamp, str) and len(stamp) >= 10:
        return stamp[:10]
    return utc_stamp(path.stat().st_mtime)[:10]
