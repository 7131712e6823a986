"""Metric sinks beside metrics.csv: Weights & Biases (`logger=wandb`).

A sink gets every metrics row (`log_row`) and the final result (`finish`). W&B is optional and
never required for a run to work: the local files are written first, and any W&B error is
logged once as a warning and turns the sink off, so it can never lose a result.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
WANDB_MODES = ("online", "offline", "disabled")


def wandb_mode(configured: str | None) -> str:
    """The mode from the config (whose default reads WANDB_MODE), else WANDB_MODE, else offline."""
    mode = configured or os.environ.get("WANDB_MODE") or "offline"
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode={mode!r}; valid: {list(WANDB_MODES)}")
    return mode


def numeric(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class WandbSink:
    """One W&B run per training run: group = sweep name, tags = method / dataset / sample rate.

    Metrics rows are logged as `<stage>/<column>` (finetune/loss, disentangle/mmd2, eval/test_acc)
    so the dashboard groups the panels by stage.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, stub: dict):
        self.run = None
        try:
            import wandb  # late: slow to import, and needed only with logger=wandb

            lg = cfg.logger
            self.run = wandb.init(
                project=lg.project, entity=lg.entity, group=cfg.sweep_name, job_type="train",
                name=cfg.run_name or None, dir=str(run_dir), mode=wandb_mode(lg.mode),
                tags=[stub["method"], stub["dataset"], f"sr{stub['sample_rate']}", *lg.tags],
                config=OmegaConf.to_container(cfg, resolve=True), reinit="create_new")
        except Exception as exc:  # noqa: BLE001 - W&B must never stop a run
            self._fail("init", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        log.warning("W&B %s failed (%s: %s); the run goes on with local files only",
                    what, type(exc).__name__, exc)
        self.run = None

    def log_row(self, row: dict) -> None:
        if self.run is None:
            return
        stage = row.get("stage", "metrics")
        try:
            self.run.log({f"{stage}/{k}": v for k, v in numeric(row).items()})
        except Exception as exc:  # noqa: BLE001
            self._fail("log", exc)

    def finish(self, result: dict) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update({**numeric(result), "status": result.get("status")})
            self.run.finish(exit_code=0 if result.get("status") == "completed" else 1)
        except Exception as exc:  # noqa: BLE001
            self._fail("finish", exc)
        self.run = None


def build_sinks(cfg: DictConfig, run_dir: Path, stub: dict) -> list:
    """The sinks the `logger` config asks for (metrics.csv itself is always written)."""
    if cfg.logger.name == "wandb":
        return [WandbSink(cfg, Path(run_dir), stub)]
    return []


def log_table(frame, plots: list[Path], sweep: str, sweep_dir: Path, project: str = "tred",
              entity: str | None = None, mode: str | None = None) -> bool:
    """Log a finished table (a `wandb.Table`) and its plots to a W&B run of its own
    (job_type `table`, group = sweep name). Returns False, with a warning, when W&B fails."""
    try:
        import wandb  # late: slow to import, and needed only by tables logged to W&B

        run = wandb.init(project=project, entity=entity, group=sweep, job_type="table",
                         name=f"table-{sweep}", dir=str(sweep_dir), mode=wandb_mode(mode),
                         tags=["table", sweep], reinit="create_new")
        run.log({"table": wandb.Table(dataframe=frame),
                 **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots}})
        run.finish()
        return True
    except Exception as exc:  # noqa: BLE001 - the local table is already written
        log.warning("W&B logging of the table failed (%s: %s); the local files are complete",
                    type(exc).__name__, exc)
        return False
