"""scripts/archive_runs.py: a sweep's finished runs as text records give the same table and resume."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fake_runs import paired_sweep, write_run
from tred.tables.render import to_markdown
from tred.tables.table import build_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import archive_runs  # noqa: E402


def test_the_records_give_the_same_table_and_nothing_else(tmp_path):
    sweep = paired_sweep(tmp_path / "s")
    write_run(sweep, "l2", "elpv", 7, None, result=False)  # unfinished: config.yaml only
    (sweep / "l2" / "elpv" / "sr1.0" / "seed0" / "checkpoint.pt").write_bytes(b"x" * 100)
    (sweep / "wandb").mkdir()
    assert archive_runs.main([str(sweep), str(tmp_path / "a")]) == 0
    kept = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(kept) == 12 * 2  # 12 finished runs (one failed) x result.json + config.yaml
    assert not any("checkpoint" in k or "wandb" in k or "seed7" in k for k in kept)
    finished = sweep / "l2" / "elpv" / "sr1.0" / "seed7"
    assert finished.is_dir() and not (tmp_path / "a" / "l2" / "elpv" / "sr1.0" / "seed7").exists()
    # the table from the records: the same numbers (the unfinished seed 7 is not in the archive)
    (finished / "config.yaml").unlink()
    finished.rmdir()
    assert to_markdown(build_table(tmp_path / "a")) == to_markdown(build_table(sweep))


def test_the_records_keep_the_day_the_runs_finished_without_file_times(tmp_path):
    """git does not keep file times: the archive writes each run's end into result.json."""
    import json
    import os
    import shutil

    from tred.tables.render import section_text

    sweep = paired_sweep(tmp_path / "s")
    day = 1_700_000_000  # 2023-11-14 UTC
    for res in sweep.rglob("result.json"):
        os.utime(res, (day, day))
    assert archive_runs.main([str(sweep), str(tmp_path / "a")]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "clone")  # new file times, as in a fresh clone
    stamps = {json.loads(p.read_text())["finished"] for p in (tmp_path / "clone").rglob("result.json")}
    assert stamps == {"2023-11-14T22:13:20+00:00"}
    table = build_table(tmp_path / "clone")
    assert "the last run finished 2023-11-14." in section_text(table, "", "cmd")


def test_the_records_hold_no_path_of_this_machine(tmp_path):
    """dataset.root and reuse_from (a table run's tuning sweep) are this machine's paths."""
    import yaml

    sweep = paired_sweep(tmp_path / "s")
    run = next(sweep.rglob("config.yaml")).parent
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg.setdefault("dataset", {})["root"] = "/home/me/data"
    cfg["reuse_from"] = "/home/me/bench/5pc/tune"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        ["method=finetune", "dataset.root=/home/me/data", "reuse_from=/home/me/bench/5pc/tune"]))
    assert archive_runs.main([str(sweep), str(tmp_path / "a")]) == 0
    kept = tmp_path / "a" / run.relative_to(sweep)
    text = (kept / "config.yaml").read_text() + (kept / ".hydra" / "overrides.yaml").read_text()
    assert "/home/me" not in text and "method=finetune" in text
