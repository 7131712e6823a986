"""A real smoke sweep (Hydra multirun through scripts/train.py) -> table; re-running it skips every
finished run, re-runs a failed one (keeping the failure in its log) with logger=wandb (offline),
whose run file must hold the same eval/test_acc as result.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.wandb_reader import history

# Two method presets (configs/method/) with cheap stage-free regularizers.
METHODS = ["finetune", "bss"]


def sweep(cli, sweep_dir: Path, *extra: str) -> str:
    """Run the smoke sweep; returns its log (Hydra logs to stdout, errors go to stderr)."""
    proc = cli("-m", "experiment=smoke", f"method={','.join(METHODS)}", "seed=0,1", "dataset.test_per_class=3",
               "trainer.max_iters=2", "trainer.threads=1", f"cache_dir={sweep_dir.parent / 'cache'}",
               f"hydra.sweep.dir={sweep_dir}", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_smoke_sweep_table_skip_and_rerun_failed(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    root = tmp_path / "sweep"
    sweep(cli, root)
    results = sorted(root.rglob("result.json"))
    assert len(results) == 2 * len(METHODS)

    from tred.tables.render import to_markdown
    from tred.tables.table import build_table

    table = build_table(root)
    assert table.missing.empty and table.columns == ["digits"]
    accs = pd.DataFrame([json.loads(p.read_text()) for p in results])
    for method, acc in accs.groupby("method")["test_acc"]:
        assert table.summary.at[method, ("digits", "mean")] == pytest.approx(acc.mean())
        assert table.summary.at[method, ("digits", "std")] == pytest.approx(acc.std(ddof=1))
    assert "Fine-tune (L2)" in to_markdown(table)

    # One run "failed" (as a Ctrl-C leaves it); the others are done.
    failed, done = results[0], results[1:]
    failed.write_text(json.dumps({**json.loads(failed.read_text()), "status": "failed",
                                  "error": "KeyboardInterrupt: "}))
    stamps = {p: p.stat().st_mtime_ns for p in done}
    # Again, with another logger and thread count: neither is part of a run's identity.
    log = sweep(cli, root, "logger=wandb", "trainer.threads=2")
    assert log.count("skipping") == len(done)
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert "previous attempt failed: KeyboardInterrupt" in (failed.parent / "train.log").read_text()
    result = json.loads(failed.read_text())
    assert result["status"] == "completed"
    # The re-run logged to an offline W&B run holding the same final accuracy.
    (wb,) = (failed.parent / "wandb").glob("offline-run-*/run-*.wandb")
    logged = [row["eval/test_acc"] for row in history(wb) if "eval/test_acc" in row]
    assert logged == [pytest.approx(result["test_acc"])]
