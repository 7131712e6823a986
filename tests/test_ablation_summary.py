"""scripts/ablation_summary.py: variants from run directories, paired differences by seed against
the control rows (hand-computed), stage-1 checks, and the refusal of test-split results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ablation_summary", Path(__file__).resolve().parents[1] / "scripts" / "ablation_summary.py")
ablation_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation_summary)

# (method, override subdirectory or "", seed) -> validation accuracy (None: failed)
RUNS = {
    ("l2", "", 0): 50.0, ("l2", "", 1): 52.0, ("l2", "", 2): 54.0,
    ("tred-full", "", 0): 51.0, ("tred-full", "", 1): 54.0, ("tred-full", "", 2): 55.0,
    ("tred-max_mmd_min_mi", "", 0): 52.0, ("tred-max_mmd_min_mi", "", 1): 53.0,
    ("tred-max_mmd_min_mi", "", 2): None,  # a failed seed drops out of the pairs
    ("tred-max_mmd_min_mi", "regularizer.tred.channel_weights=attention", 0): 49.0,
    ("tred-full", "regularizer.tred.channel_weights=attention,regularizer.tred.layers=[a,b]", 0): 48.0,
}


def make_sweep(root: Path, eval_split: str = "val") -> Path:
    for (method, sub, seed), acc in RUNS.items():
        d = root / method / "flowers102" / "sr0.25" / f"seed{seed}" / sub
        d.mkdir(parents=True)
        res = {"method": method, "seed": seed, "eval_split": eval_split, "dataset": "flowers102",
               "status": "failed" if acc is None else "completed", "test_acc": acc,
               "stage1_time_s": 10.0, "finetune_time_s": 100.0}
        if method.startswith("tred-max"):
            res.update({"disentangle_relevant_val_acc": 40.0 + seed, "source_probe_val_acc": 50.0,
                        "disentangle_irrelevant_probe_val_acc": 30.0, "disentangle_reference_gap": 2.0})
        if method == "tred-full" and not sub:  # a cache hit: the run spent nothing on stage 1
            res.update({"stage1_time_s": 0.001, "stage1_compute_time_s": 20.0})
        (d / "result.json").write_text(json.dumps(res))
    return root


def test_paired_rows_against_two_controls(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep")
    ablation_summary.main([str(sweep), "--against", "l2", "tred-full", "--out", str(tmp_path / "t.md")])
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    lines = capsys.readouterr().out.splitlines()
    assert (tmp_path / "t.md").read_text().splitlines() == lines
    col = {name: i for i, name in enumerate(cells(lines[0]))}
    rows = {cells(line)[col["variant"]]: cells(line) for line in lines[2:]}

    assert set(rows) == {"l2", "tred-full", "tred-max_mmd_min_mi",
                         "tred-max_mmd_min_mi regularizer.tred.channel_weights=attention",
                         # two overrides, one of them a list: split on the commas between overrides only
                         "tred-full regularizer.tred.channel_weights=attention regularizer.tred.layers=[a,b]"}
    # tred-full - l2 = +1, +2, +1: mean 4/3, sd 0.57735, t(0.975, 2) = 4.302653 -> half 1.43426
    assert rows["tred-full"][col["vs l2"]] == "+1.33 [-0.10, +2.77] (n=3)"
    assert rows["tred-full"][col["val acc"]] == "53.33 ± 2.08"
    # seed 2 failed: pairs on seeds 0 and 1 only: +2, +1 -> mean 1.5, sd 0.7071, t(0.975, 1) = 12.7062
    assert rows["tred-max_mmd_min_mi"][col["vs l2"]] == "+1.50 [-4.85, +7.85] (n=2)"
    assert rows["tred-max_mmd_min_mi"][col["vs tred-full"]] == "+0.00 [-12.71, +12.71] (n=2)"
    assert rows["tred-max_mmd_min_mi"][col["not completed"]] == "1"
    # one seed: a difference without an interval
    assert rows["tred-max_mmd_min_mi regularizer.tred.channel_weights=attention"][col["vs l2"]] == "-1.00 (n=1)"
    # stage-1 checks: mean over the runs that have them; the baselines have none
    assert rows["tred-max_mmd_min_mi"][col["relevant head"]] == "41.0"
    assert rows["tred-max_mmd_min_mi"][col["irrelevant probe"]] == "30.0"
    assert rows["l2"][col["relevant head"]] == ""
    # a share only for TRED: other methods' stage1_time_s is set-up, not a stage 1
    assert rows["l2"][col["stage 1 / fine-tuning"]] == ""
    assert rows["tred-max_mmd_min_mi"][col["stage 1 / fine-tuning"]] == "0.10"
    # the share counts stage 1 at its compute time, also in runs that read it from the cache
    assert rows["tred-full"][col["stage 1 / fine-tuning"]] == "0.20"


def test_test_split_results_are_refused(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", eval_split="test")
    with pytest.raises(SystemExit, match="validation split"):
        ablation_summary.main([str(sweep)])


def test_unknown_control_names_the_variants(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    with pytest.raises(SystemExit, match="no such variant.*tred-full"):
        ablation_summary.main([str(sweep), "--against", "delta"])
