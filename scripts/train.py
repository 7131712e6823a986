"""The one entry point: `python scripts/train.py [hydra overrides]`, `-m` for sweeps."""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tred.config import register_resolvers
from tred.errors import TredError
from tred.run import run
from tred.runlock import RunInterrupted

register_resolvers()
log = logging.getLogger("tred")


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        hc = HydraConfig.get()
        result = run(cfg, hc.runtime.output_dir, explicit=hc.overrides.task)
    except TredError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("%s", exc)
            raise  # Hydra records this job as failed and runs the rest of the sweep
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as exc:  # incomplete, not failed: the same command resumes
        saved = "checkpoint saved" if exc.iteration is not None else "the last checkpoint, if any, is kept"
        print(f"{exc}; {saved}; run the same command to resume", file=sys.stderr)
        sys.exit(128 + exc.signum)
    if not result.get("skipped"):
        log.info("%s: %s accuracy %.2f%%", result["method"], result.get("eval_split", "test"), result["test_acc"])
    return result["test_acc"]


if __name__ == "__main__":
    main()
