"""scripts/benchmark.py end to end on a tiny generated image folder: tuning on held-out training
images at each budget, the tables at the chosen weights, the headline, all under one folder; and
the tuning's rounds beyond the edge of the grid (the commands, without training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests import fake_trees

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import benchmark  # noqa: E402


def test_the_protocol_on_a_generated_image_folder(tmp_path):
    data = tmp_path / "petals"
    fake_trees.image_folder(data, per_class=12, classes=3)  # seeded split: 8 training images per class
    out = tmp_path / "bench"
    assert benchmark.main([
        "--dataset", "image_folder", "--root", str(data), "--budgets", "2,4", "--seeds", "0,1",
        "--tune-seeds", "0", "--rows", "finetune,tred_projection", "--grid", "0.1,1.0", "--regrid", "0.1,1.0",
        "--epochs", "2", "--batch-size", "2", "--launcher", "basic", "--out", str(out), "--extend", "1",
        "--set", "dataset.image_size=32", "--set", "dataset.resize=36", "--set", "logger=csv",
        "--set", f"cache_dir={tmp_path / 'cache'}"]) == 0

    results = {p: json.loads(p.read_text()) for p in out.rglob("result.json")}
    # per budget: tuning 2 rows x 2 weights x 1 seed, + 1 value beyond the edge for each row (on a
    # grid of two values every choice is at an edge; --extend 1: one round); the table 2 rows x 2 seeds
    assert len(results) == 2 * (2 * 2 * 1 + 2 + 2 * 2)
    assert all(r["status"] == "completed" and r["dataset"] == "petals" for r in results.values())
    tuning = [r for p, r in results.items() if "tune" in p.parts]
    assert len(tuning) == 12 and all(r["eval_split"] == "val" for r in tuning)  # tuning never reads the test split
    assert all(r["eval_split"] == "test" for p, r in results.items() if "table" in p.parts)
    # the table's seed-0 runs (the tuning seed) took over the tuning runs' training at the chosen
    # weights, and were only scored; seed 1 trained; the kept checkpoints were deleted after the table
    adopted = {(r["budget"], r["method"], r["seed"]): r.get("trained_in")
               for p, r in results.items() if "table" in p.parts}
    assert {k for k, v in adopted.items() if v} == {(b, m, 0) for b in (2, 4) for m in ("l2", "tred-projection")}
    assert all(v.startswith(f"petals_{b}pc_tune/{m}/petals/") for (b, m, _), v in adopted.items() if v)
    assert not list(out.rglob("checkpoint.pt"))
    # 2 epochs of full batches of 2: 3 classes x 2 images -> 6 iterations, x 4 images -> 12
    assert {(r["budget"], r["iters"], r["train_size"]) for r in results.values()} == {(2, 6, 6), (4, 12, 12)}

    two = yaml.safe_load((out / "configs" / "tuned" / "petals_2pc.yaml").read_text())
    four = yaml.safe_load((out / "configs" / "tuned" / "petals_4pc.yaml").read_text())
    def decays(budget):
        return sorted(yaml.safe_load((p.parent / "config.yaml").read_text())["regularizer"]["l2"]["weight_decay"]
                      for p in (out / f"{budget}pc" / "tune").rglob("result.json") if "l2" in p.parts)
    # fine-tuning's published 1e-4 x 0.1 and x 1, and one decade beyond the edge it was chosen at
    assert decays(2) in (pytest.approx([1e-6, 1e-5, 1e-4]), pytest.approx([1e-5, 1e-4, 1e-3]))
    chosen = two["regularizer_overrides"]["l2"]["weight_decay"]
    assert any(chosen == pytest.approx(d) for d in decays(2))
    # at 4 per class the grid is relative to the 2-per-class choice (x 0.1, x 1), then one beyond
    grid4 = decays(4)
    assert pytest.approx(chosen * 0.1) in grid4 and pytest.approx(chosen) in grid4 and len(grid4) == 3
    assert any(four["regularizer_overrides"]["l2"]["weight_decay"] == pytest.approx(d) for d in grid4)

    for budget in (2, 4):
        table = (out / f"{budget}pc" / "table" / "table.md").read_text()
        assert "| Method | petals |" in table and "image_folder" not in table
        assert (out / f"{budget}pc" / "table" / "plots").is_dir()
    headline = (out / "headline.md").read_text()
    assert "| Δ vs fine-tuning, points [95% CI] | 2 per class | 4 per class |" in headline
    assert "| TRED-projection (class-mean split) |" in headline and (out / "headline.png").is_file()


def tuning_commands(monkeypatch, tmp_path, answers, extend):
    """The commands Protocol.tune issues when `--beyond-edges` answers `answers` in turn."""
    issued, asked = [], []
    proto = benchmark.Protocol(SimpleNamespace(
        out=str(tmp_path), label="petals", grid="0.1,1.0", regrid="0.1,1.0,10.0", rows=["finetune", "at", "delta"],
        tune_seeds="0,1", extend=extend, dry_run=False, tune_only=False))
    monkeypatch.setattr(proto, "common", lambda budget: [f"dataset.budget={budget}"])
    def step(cmd, capture=False):
        if capture:  # the --beyond-edges question
            asked.append(cmd)
            return answers[len(asked) - 1]
        issued.append(cmd)
        return ""
    monkeypatch.setattr(proto, "step", step)
    proto.tune(10, "petals_5pc")
    sweeps = [" ".join(a for a in cmd if a.startswith(("method=", "weight_scale="))) for cmd in issued
              if "scripts/train.py" in cmd]
    return sweeps, asked, issued


def test_a_row_chosen_at_an_edge_gets_the_next_value_beyond_it(monkeypatch, tmp_path):
    answers = ["method=at weight_scale=0.01\nmethod=finetune weight_scale=100.0\nmethod=delta weight_scale=0.01\n",
               "method=at weight_scale=0.001\n", ""]
    sweeps, asked, issued = tuning_commands(monkeypatch, tmp_path, answers, extend=2)
    assert sweeps == ["method=finetune,at,delta weight_scale=0.1,1.0,10.0",  # the grid
                      "method=at,delta weight_scale=0.01", "method=finetune weight_scale=100.0",  # round 1
                      "method=at weight_scale=0.001"]  # round 2; then nothing is left at an edge
    # tune_summary stops a row at the grid's 3 values + 2 (--max-values), the loop when it says nothing
    assert len(asked) == 3 and all(cmd[-3:] == ["--beyond-edges", "--max-values", "5"] for cmd in asked)
    assert "--write" in issued[-1] and "+tuned=petals_5pc" in issued[1]  # extensions keep the grid's centre
    assert all("hydra.sweep.subdir='${run_name}/weight_scale=${weight_scale}'" in cmd for cmd in issued[:-1])
    sweeps, asked, _ = tuning_commands(monkeypatch, tmp_path, answers, extend=0)  # the grid only
    assert len(sweeps) == 1 and asked == []


def test_retuning_the_edge_rows_of_a_tuned_file(monkeypatch, tmp_path):
    """--retune-edges: only --rows, on --regrid x the given file's weights, in <budget>pc/tune-edges;
    the written file is the given one with those rows replaced; --tune-only: no table, no headline."""
    first = tmp_path / "mine.yaml"
    first.write_text("# @package _global_\nregularizer_overrides:\n  l2:\n    weight_decay: 0.0001\n")
    issued = []
    args = SimpleNamespace(out=str(tmp_path / "out"), label="petals", grid="0.1,1.0", regrid="0.1,1.0,10.0",
                           rows=["finetune", "at"], tune_seeds="0,1", extend=2, dry_run=False, budgets="5",
                           tuned=[], retune_edges=[f"5={first}"], tune_only=True, seeds="0-4", wandb=False)
    proto = benchmark.Protocol(args)
    monkeypatch.setattr(proto, "common", lambda budget: [f"dataset.budget={budget}"])
    monkeypatch.setattr(proto, "step", lambda cmd, capture=False: issued.append(cmd) or "")
    proto.run()
    tuned = tmp_path / "out" / "configs" / "tuned"
    assert (tuned / "petals_5pc_first.yaml").read_text() == first.read_text()  # the centre, kept as given
    grid, beyond, write = issued
    assert "+tuned=petals_5pc_first" in grid and "method=finetune,at" in grid and "weight_scale=0.1,1.0,10.0" in grid
    assert "sweep_name=petals_5pc_tune_edges" in grid
    assert "trainer.keep_checkpoint=false" in grid  # no table in this command to take them over
    assert f"hydra.sweep.dir={tmp_path / 'out' / '5pc' / 'tune-edges'}" in grid
    assert "--beyond-edges" in beyond
    assert write[-4:] == ["--write", str(tuned / "petals_5pc.yaml"), "--update", str(tuned / "petals_5pc_first.yaml")]

    issued.clear()
    args.tune_only = False
    proto.run()
    assert "trainer.keep_checkpoint=true" in issued[0]
    table = next(cmd for cmd in issued if any(a.startswith("seed=0,1,2,3,4") for a in cmd))
    assert "+tuned=petals_5pc" in table and f"reuse_from={tmp_path / 'out' / '5pc' / 'tune-edges'}" in table
    assert "scripts/headline.py" in issued[-1]


@pytest.mark.parametrize("argv, message", [
    (["--tuned", "5=nowhere.yaml"], "--tuned '5=nowhere.yaml'"),
    (["--retune-edges", "five={tuned}"], "--retune-edges 'five="),
    (["--tuned", "5={tuned}", "--retune-edges", "5={tuned}"], "budget 5 given to both"),
])
def test_bad_tuned_files_get_one_line_and_exit_2(tmp_path, capsys, argv, message):
    tuned = tmp_path / "t.yaml"
    tuned.write_text("# @package _global_\n")
    argv = [a.format(tuned=tuned) for a in argv]
    assert benchmark.main(["--dataset", "image_folder", "--root", str(tmp_path), "--dry-run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
