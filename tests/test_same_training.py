"""scripts/same_training.py: runs paired by training config (what an adoption pairs), their
logged training rows compared bit for bit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import same_training  # noqa: E402

HEAD = "stage,iter,lr,ce,loss,train_acc,imgs_per_s,test_acc\n"


def run(root: Path, name: str, wd: float, losses, split="test", seed=0, sweep="table"):
    d = root / name
    d.mkdir(parents=True)
    cfg = {"seed": seed, "sweep_name": sweep, "weight_scale": 1.0, "regularizer": {"l2": {"weight_decay": wd}},
           "dataset": {"name": "flowers102", "budget": 5, "validation": split == "val"}, "trainer": {"threads": 1}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "result.json").write_text(json.dumps({"status": "completed", "train_size": 510, "eval_split": split}))
    rows = [f"finetune,{15 * (i + 1)},0.01,{x!r},{x!r},50.0,{70 + i}.5,\n" for i, x in enumerate(losses)]
    (d / "metrics.csv").write_text(HEAD + "".join(rows) + f"eval,30,,,,,,{55 + seed}.0\n")


def test_pairs_by_training_config_and_compares_every_logged_cell(tmp_path, capsys):
    table, tune = tmp_path / "table", tmp_path / "tune"
    run(table, "l2/seed0", 1e-2, [4.1, 3.0])
    run(table, "l2/seed1", 1e-2, [4.2, 3.1], seed=1)
    run(tune, "l2/seed0/x1", 1e-2, [4.1, 3.0], split="val", sweep="tune")      # same training, scored on val
    run(tune, "l2/seed0/x10", 1e-1, [4.1, 3.0], split="val", sweep="tune")     # another weight: not paired
    run(tune, "l2/seed1/x1", 1e-2, [4.2, 3.1000001], split="val", seed=1, sweep="tune")
    assert same_training.main([str(table), str(tune)]) == 1
    out = capsys.readouterr().out
    assert "l2/seed0  ~  l2/seed0/x1: 2 training rows, identical" in out
    assert "l2/seed1  ~  l2/seed1/x1: 2 training rows, 2 of 10 cells differ" in out  # ce and loss of one row
    assert "x10" not in out and "1 of 2 pairs trained identically" in out

    (tune / "l2/seed1/x1/metrics.csv").unlink()
    run(tune, "l2/seed1/y1", 1e-2, [4.2, 3.1], split="val", seed=1, sweep="tune")
    assert same_training.main([str(table), str(tune)]) == 0
    assert "2 of 2 pairs trained identically" in capsys.readouterr().out


def test_nothing_to_pair_or_no_sweep(tmp_path, capsys):
    run(tmp_path / "a", "r", 1e-2, [4.0])
    run(tmp_path / "b", "r", 1e-3, [4.0])
    assert same_training.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "no run of the first sweep" in capsys.readouterr().out
    assert same_training.main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
