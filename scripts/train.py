"""The one entry point: `python scripts/train.py [hydra overrides]`, `-m` for sweeps.

Bad input is one line on stderr and exit status 2, whether the schemas (tred/config.py) or
Hydra's composition (an unknown key or group option, a malformed override) reject it. The
run's train.log and .hydra/ are written here, once the run will really run: a run skipped as
complete or refused leaves its finished run directory untouched (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tred.errors import TredError
from tred.io import atomic_write
from tred.kernels import pin
from tred.runlock import ParentWatch, RunInterrupted
from tred.schema import check_overrides, register_resolvers

register_resolvers()
log = logging.getLogger("tred")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default job log format


class RunFiles:
    """`run(on_start=...)`: the run's `<job name>.log` (appended) and `.hydra/` record of the
    config, Hydra config and overrides, written under the run lock once the run will run."""

    def __init__(self, cfg: DictConfig):
        self.cfg, self.handler = cfg, None

    def __call__(self, run_dir: Path) -> None:
        hc = HydraConfig.instance().cfg
        for name, node in (("config.yaml", self.cfg), ("hydra.yaml", hc), ("overrides.yaml", hc.hydra.overrides.task)):
            atomic_write(run_dir / ".hydra" / name, lambda fh, node=node: fh.write(OmegaConf.to_yaml(node)))
        self.handler = logging.FileHandler(run_dir / f"{hc.hydra.job.name}.log", mode="a")
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self.handler)

    def close(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    files = RunFiles(cfg)
    watch = ParentWatch.for_worker()  # a parallel sweep's worker stops when the sweep's process is gone
    try:
        hc = HydraConfig.get()
        check_overrides(hc.overrides.task)
        kernels = pin(cfg.trainer.kernels)  # before torch is imported (in a sweep worker too)
        from tred.run import run  # late: bad input above fails before torch is imported

        with watch.running() if watch else contextlib.nullcontext():
            result = run(cfg, hc.runtime.output_dir, explicit=hc.overrides.task, on_start=files, kernels=kernels)
    except TredError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("%s", exc)
            raise  # Hydra records this job as failed and runs the rest of the sweep
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as exc:  # incomplete, not failed: the same command resumes
        saved = "checkpoint saved" if exc.iteration is not None else "the last checkpoint, if any, is kept"
        print(f"{exc}; {saved}; run the same command to resume", file=sys.stderr)
        if watch is not None and watch.orphaned.is_set():
            files.close()
            logging.shutdown()
            os._exit(128 + exc.signum)  # nobody to report to: exit instead of taking the next job
        sys.exit(128 + exc.signum)
    finally:
        files.close()
    if not result.get("skipped"):
        log.info("%s: %s accuracy %.2f%%", result["method"], result.get("eval_split", "test"), result["test_acc"])
    return result["test_acc"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def composition_error(exc: Exception) -> str:
    """One line for what Hydra reports in several: the key or option, and what to do."""
    cause = exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        options = exc.options or group_options(group)
        valid = f"; valid: {', '.join(options)}" if options else ""
        return f"unknown {group} option `{option}`{valid}"
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        parent = getattr(cause, "parent_node", None)
        keys = sorted(str(k) for k in parent.keys() if k != "hydra") if hasattr(parent, "keys") else []
        where = full_key.rpartition(".")[0]
        listing = f"; the keys {f'of `{where}` ' if where else 'at the top '}are: {', '.join(keys)}" if keys else ""
        hint = ""
        if full_key.startswith("regularizer.") and any(
                re.match(r"(method|regularizer)=[^\[]*,", a) for a in sys.argv[1:]):
            hint = ("; with a sweep over `method` or `regularizer`, Hydra applies a `regularizer.<name>` "
                    "override to the default config (fine-tuning) first: run one method per command")
        return f"unknown config key `{full_key}`{listing}{hint}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{first} (see https://hydra.cc/docs/advanced/override_grammar/basic)" if isinstance(
        exc, OverrideParseException) else first


def cli() -> None:
    """Hydra prints a composition error in several lines and exits 1; this makes it one line
    and exit 2, as for every other bad input. HYDRA_FULL_ERROR=1 keeps Hydra's full report."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them and exiting 1
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as exc:  # nothing has run yet
        print(f"error: {composition_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except TredError as exc:  # a sweep job failed (logged above, and in its train.log / result.json)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
