"""The W&B sink in offline mode writes a run file holding the logged metrics; a broken W&B
never stops a run."""

from __future__ import annotations

import os

import pytest
import wandb
from omegaconf import OmegaConf

from tests.wandb_reader import history
from tred.engine.metrics import MetricsLog
from tred.loggers import WandbSink, wandb_mode


def cfg(mode="offline"):
    return OmegaConf.create({"logger": {"name": "wandb", "project": "tred-test", "entity": None,
                                        "mode": mode, "tags": ["t"]},
                             "sweep_name": "s", "run_name": "l2/digits/sr1.0/seed0"})


STUB = {"method": "l2", "dataset": "digits", "sample_rate": 1.0}


def test_offline_run_holds_logged_rows(tmp_path):
    sink = WandbSink(cfg(), tmp_path, STUB)
    assert sink.run is not None
    log = MetricsLog(tmp_path / "metrics.csv", [sink])
    losses = [2.5, 1.25, 0.5]
    for i, loss in enumerate(losses, 1):
        log.log({"stage": "finetune", "iter": i, "loss": loss})
    log.log({"stage": "disentangle", "epoch": 1, "mmd2": 0.125})
    log.log({"stage": "eval", "test_acc": 42.5})
    sink.finish({"status": "completed", "test_acc": 42.5})
    wandb.teardown()  # what process exit does: the W&B service flushes and closes the run file
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows = history(run_file)
    assert [r["finetune/loss"] for r in rows if "finetune/loss" in r] == losses
    assert [r["disentangle/mmd2"] for r in rows if "disentangle/mmd2" in r] == [0.125]
    assert [r["eval/test_acc"] for r in rows if "eval/test_acc" in r] == [42.5]
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 6  # header + 5 rows, local first


def test_restored_rows_reach_the_sinks_again(tmp_path):
    """A resumed or adopted run's sink (a new W&B run each attempt) gets the earlier rows too."""
    class Sink:
        rows: list = []

        def log_row(self, row):
            self.rows.append(row)

    sink = Sink()
    log = MetricsLog(tmp_path / "metrics.csv", [sink])
    earlier = [{"stage": "finetune", "iter": 1, "loss": 2.5}, {"stage": "finetune", "iter": 2, "loss": 1.5}]
    log.restore(earlier)
    log.log({"stage": "eval", "test_acc": 42.5})
    assert sink.rows == [*earlier, {"stage": "eval", "test_acc": 42.5}]
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4


def test_broken_wandb_does_not_stop_the_run(tmp_path, caplog):
    sink = WandbSink(cfg(mode="bogus"), tmp_path, STUB)  # init fails -> warning, sink off
    assert sink.run is None and "W&B init failed" in caplog.text
    log = MetricsLog(tmp_path / "metrics.csv", [sink])
    log.log({"stage": "finetune", "iter": 1, "loss": 1.0})
    sink.finish({"status": "completed"})
    assert (tmp_path / "metrics.csv").is_file()


def test_mode(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode(None) == "offline"
    assert wandb_mode("online") == "online"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_mode(None) == "online"
    with pytest.raises(ValueError, match="valid"):
        wandb_mode("bogus")


@pytest.mark.parametrize("exp", ["mini_table", "flowers_table", "paper_cub200"])
def test_table_experiments_log_to_wandb_offline_unless_told_not_to(exp):
    from conftest import compose_cfg

    cfg = compose_cfg([f"experiment={exp}", "method=finetune"], smoke=False)
    assert cfg.logger.name == "wandb" and cfg.logger.mode in ("offline", os.environ.get("WANDB_MODE"))
    assert compose_cfg([f"experiment={exp}", "method=finetune", "logger=csv"], smoke=False).logger.name == "csv"
