"""Run identities of every sweep: one JSON, to diff before and after a refactor.

    python scripts/config_snapshot.py /tmp/snapshot_before.json      # on the old code
    python scripts/config_snapshot.py /tmp/snapshot_after.json       # on the new code
    diff /tmp/snapshot_before.json /tmp/snapshot_after.json          # must print nothing

A sweep resumes a run when the validated, resolved config saved as the run directory's
`config.yaml` equals the new one, and finds the run directory from `run_name` and
`hydra.job.override_dirname` (configs/train.yaml). For every experiment in configs/experiment/
(or those named with --experiment), every job of its sweep (the cartesian product of
`hydra.sweeper.params`; one job when it sweeps nothing) is composed with Hydra's compose API,
as `python scripts/train.py -m experiment=<name>` would compose it, validated with
`tred.config.validate` and written as `{experiment: {run directory: validated config}}`, the
run directory relative to the sweep directory (`hydra.sweep.subdir`).

--one-seed keeps only the first value of a swept `seed` (a plain value, read nowhere but in
the run name and the stage caches): a third of the work, for a quick check on a busy machine;
the full check is without it. The file is rewritten after each experiment, so an interrupted
snapshot still holds the experiments it finished (compare the same experiments after).

Deterministic: the `threads_per_job` resolver sees no running Hydra app here and gives null
(`trainer.threads` is operational, never part of a run's identity). Nothing is read from the
data directories, nothing is written but the output file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from tred.config import validate
from tred.schema import register_resolvers

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def sweep_jobs(params: dict, one_seed: bool = False) -> list[list[str]]:
    """Every job's overrides (`key=value` strings) of a sweeper's params, in Hydra's order."""
    parser = OverridesParser.create()
    axes = []
    for key, values in params.items():
        (ov,) = parser.parse_overrides([f"{key}={values}"])
        choices = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        if one_seed and key == "seed":
            choices = choices[:1]
        axes.append([f"{key}={v}" for v in choices])
    return [list(job) for job in itertools.product(*axes)]


def snapshot(configs: Path = CONFIGS, experiments=None, one_seed: bool = False, on_experiment=None) -> dict:
    """{experiment: {run directory (relative to the sweep dir): validated resolved config}}.

    `on_experiment(out)` is called after each experiment (the file is rewritten there)."""
    register_resolvers()
    names = experiments or sorted(p.stem for p in (configs / "experiment").glob("*.yaml"))
    out: dict = {}
    with initialize_config_dir(config_dir=str(configs.resolve()), version_base="1.3"):
        for name in names:
            base = compose(config_name="train", overrides=[f"experiment={name}"], return_hydra_config=True)
            params = base.hydra.sweeper.params
            params = OmegaConf.to_container(params) if params else {}
            runs = {}
            for job in sweep_jobs(params, one_seed):
                overrides = [f"experiment={name}", *job]
                cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
                run_dir = str(cfg.hydra.sweep.subdir)
                with open_dict(cfg):
                    del cfg["hydra"]
                runs[run_dir] = OmegaConf.to_container(validate(cfg, overrides))
            out[name] = runs
            print(f"{name}: {len(runs)} runs", file=sys.stderr, flush=True)
            if on_experiment is not None:
                on_experiment(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="JSON file to write (outside the repository)")
    ap.add_argument("--configs", type=Path, default=CONFIGS, help="config directory (default: configs/)")
    ap.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    ap.add_argument("--one-seed", action="store_true", help="only the first value of a swept seed")
    args = ap.parse_args(argv)
    write = lambda snap: args.out.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")  # noqa: E731
    snap = snapshot(args.configs, args.experiment, args.one_seed, on_experiment=write)
    write(snap)
    print(f"{sum(map(len, snap.values()))} runs of {len(snap)} experiments -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
