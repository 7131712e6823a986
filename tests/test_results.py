"""The table builder on hand-written run directories; every expected number is worked out below."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import wandb
import yaml

from tests.wandb_reader import history

from tred.tables.render import to_csv_frame, to_latex, to_markdown
from tred.tables.table import build_table

_spec = importlib.util.spec_from_file_location(
    "make_table", Path(__file__).resolve().parents[1] / "scripts" / "make_table.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
make_table = _mod.main

# (method, dataset, seed) -> test_acc; regularizer/disentangle for the config.yaml
ACCS = {
    ("l2", "elpv"): [80.0, 82.0, 84.0],      # 82.0 ± 2.0
    ("l2", "digits"): [60.0, 62.0, 64.0],    # 62.0 ± 2.0
    ("l2sp", "elpv"): [85.0, 87.0, 89.0],    # 87.0 ± 2.0
    ("l2sp", "digits"): [70.0, 72.0, None],  # seed 2 failed -> 71.0 ± 1.4 (n=2)
    ("tred-max_mmd", "elpv"): [90.0],        # seed 1 unfinished, seed 2 not run -> 90.0 (n=1)
}                                            # tred-max_mmd on digits: nothing -> —
REG = {"l2": ({"l2": {}}, None), "l2sp": ({"l2sp": {}}, None),
       "tred-max_mmd": ({"tred": {}}, {"name": "max_mmd"})}


def write_run(root, method, dataset, seed, acc, *, status="completed", rate=1.0, sweep="t",
              iters=10, result=True, reg=None, note=None, extra=None):
    d = root / method / dataset / f"sr{rate}" / f"seed{seed}"
    d.mkdir(parents=True)
    reg, dis = (reg, None) if reg else REG[method]
    cfg = {"seed": seed, "sweep_name": sweep, "regularizer": reg, "disentangle": dis,
           "dataset": {"name": dataset, "sample_rate": rate}, "backbone": {"name": "b"},
           "trainer": {"max_iters": iters, "threads": seed}}  # threads may differ between runs
    if note:
        cfg["weights_note"] = note
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if result:
        res = {"status": status, "test_acc": acc, "method": method, "dataset": dataset, "seed": seed,
               "sample_rate": rate, "sweep": sweep, "regularizer": "+".join(reg), "iters": iters}
        if status == "failed":
            res.update(test_acc=None, error="NonFiniteLossError: boom")
        res.update(extra or {})
        (d / "result.json").write_text(json.dumps(res))
    return d


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for (m, ds), accs in reversed(list(ACCS.items())):  # order on disk must not matter
        for seed, acc in enumerate(accs):
            write_run(root, m, ds, seed, acc, status="completed" if acc is not None else "failed")
    write_run(root, "tred-max_mmd", "elpv", 1, None, result=False)  # interrupted
    return root


def test_cells_means_stds_missing(sweep):
    t = build_table(sweep)
    assert t.grid.methods == ["l2", "l2sp", "tred-max_mmd"]  # paper order
    assert t.columns == ["digits", "elpv"]  # no multirun.yaml: sorted
    s = t.summary
    assert s.at["l2sp", ("elpv", "mean")] == pytest.approx(87.0)
    assert s.at["l2sp", ("elpv", "std")] == pytest.approx(2.0)
    assert s.at["l2sp", ("digits", "mean")] == pytest.approx(71.0)
    assert s.at["l2sp", ("digits", "std")] == pytest.approx(math.sqrt(2))
    assert s.at["l2sp", ("digits", "n")] == 2
    assert s.at["l2sp", ("Avg.", "mean")] == pytest.approx(79.0)
    assert s.at["l2sp", ("Gain vs FT", "mean")] == pytest.approx(((87 - 82) + (71 - 62)) / 2)
    assert s.at["l2", ("Gain vs FT", "mean")] == 0
    assert math.isnan(s.at["tred-max_mmd", ("Avg.", "mean")])  # a column is missing
    reasons = t.missing.groupby("reason").size().to_dict()
    assert reasons == {"failed": 1, "unfinished": 1, "not run": 4}
    assert t.expected_runs == 18


def test_markdown_bold_and_dashes(sweep):
    md = to_markdown(build_table(sweep))
    main = md.split("\n\n")[0]  # the paired table below has rows of the same names
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in main.splitlines() if line.startswith("| ") and "Method" not in line}
    assert rows["Fine-tune (L2)"] == ["62.0 ± 2.0", "82.0 ± 2.0", "72.0", "+0.0"]
    assert rows["L2-SP"] == ["**71.0 ± 1.4** (n=2)", "87.0 ± 2.0", "**79.0**", "**+7.0**"]
    assert rows["TRED Max-MMD"] == ["—", "**90.0** (n=1)", "—", "—"]
    assert "Missing 6 of 18 runs (4 not run, 1 failed, 1 unfinished)" in md


def test_latex_and_csv(sweep, tmp_path):
    t = build_table(sweep)
    tex = to_latex(t)
    for piece in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{lcccc}",
                  "L2-SP & \\textbf{71.0 $\\pm$ 1.4}\\,(n=2) & 87.0 $\\pm$ 2.0 & \\textbf{79.0} & \\textbf{+7.0} \\\\",
                  "TRED Max-MMD & --- & \\textbf{90.0}\\,(n=1) & --- & --- \\\\"):
        assert piece in tex
    assert make_table([str(sweep), "--no-plots"]) == 0
    csv = pd.read_csv(sweep / "table.csv").set_index("method")
    assert csv.at["l2sp", "digits mean"] == pytest.approx(71.0)
    assert csv.at["l2sp", "digits std"] == pytest.approx(math.sqrt(2))
    assert csv.at["l2sp", "gain_vs_finetune"] == pytest.approx(7.0)
    assert math.isnan(csv.at["tred-max_mmd", "digits mean"])
    assert (sweep / "table.md").read_text() == to_markdown(t)
    assert (sweep / "table.tex").read_text() == tex


def test_declared_sweep_lists_missing_methods(sweep):
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"params": {"method": "finetune,l2sp,bss,tred_max_mmd", "dataset": "elpv,digits"}},
        "overrides": {"task": ["experiment=x", "seed=0,1,2"]}}}))
    t = build_table(sweep)
    assert t.grid.methods == ["l2", "l2sp", "bss", "tred-max_mmd"]
    assert t.columns == ["elpv", "digits"]  # the sweep's order
    assert (t.missing.method == "bss").sum() == 6
    assert "BSS | — | — | — | —" in to_markdown(t)


def test_sample_rates_and_plots(tmp_path):
    root = tmp_path / "sweep"
    for rate, base in ((0.5, 50.0), (1.0, 70.0)):
        for seed in (0, 1):
            write_run(root, "l2", "digits", seed, base + seed, rate=rate)
            d = write_run(root, "tred-max_mmd", "digits", seed, base + 5 + seed, rate=rate)
            pd.DataFrame({"stage": ["disentangle"] * 3 + ["finetune"], "epoch": [1, 2, 3, None],
                          "mmd2": [0.1, 0.2, 0.3, None], "relevant_acc": [40, 50, 60, None],
                          "loss": [None, None, None, 1.0]}).to_csv(d / "metrics.csv", index=False)
    t = build_table(root)
    assert t.columns == ["digits 50%", "digits 100%"]
    assert t.summary.at["tred-max_mmd", ("Gain vs FT", "mean")] == pytest.approx(5.0)
    assert make_table([str(root), "--wandb", "--wandb-mode", "offline"]) == 0
    plots = ("accuracy_per_method", "accuracy_vs_sample_rate", "stage1_tred-max_mmd")
    for name in plots:
        img = mpimg.imread(root / "plots" / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 100
    wandb.teardown()  # flush the offline table run
    (run_file,) = root.glob("wandb/offline-run-*/run-*.wandb")
    (logged,) = history(run_file)
    assert logged["table/_type"] == "table-file" and logged["table/nrows"] == 2
    assert all(logged[f"plots/{name}/_type"] == "image-file" for name in plots)
    rows = json.loads((run_file.parent / "files" / logged["table/path"]).read_text())["data"]
    assert [r[:2] for r in rows] == [["l2", "Fine-tune (L2)"], ["tred-max_mmd", "TRED Max-MMD"]]


def _keep_table(root):
    (root / "table.md").write_text("previous table")
    return lambda: (root / "table.md").read_text() == "previous table" and not (root / "table.csv").exists()


def test_empty_sweep_dir(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    untouched = _keep_table(tmp_path / "empty")
    assert make_table([str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err and untouched()
    assert make_table([str(tmp_path / "nope")]) == 2


def test_corrupt_result(sweep, capsys):
    (sweep / "l2" / "elpv" / "sr1.0" / "seed0" / "result.json").write_text('{"status": "compl')
    untouched = _keep_table(sweep)
    assert make_table([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "seed0/result.json" in err and untouched()


@pytest.mark.parametrize("kind", ["sweep", "trainer", "duplicate"])
def test_mixed_experiments(sweep, capsys, kind):
    if kind == "sweep":
        write_run(sweep / "other", "l2", "elpv", 0, 1.0, sweep="smoke")
    elif kind == "trainer":
        write_run(sweep, "tred-max_mmd", "digits", 0, 1.0, iters=99)
    else:
        write_run(sweep / "lr=0.1", "l2", "elpv", 0, 1.0)
    untouched = _keep_table(sweep)
    assert make_table([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert {"sweep": "different sweeps", "trainer": "max_iters", "duplicate": "share"}[kind] in err
    assert untouched()


def test_method_presets_name_the_paper_methods():
    from tred.methods import PAPER_ORDER
    from tred.tables.runs import CONFIGS, preset_method

    names = {p.stem: preset_method(p.stem) for p in (CONFIGS / "method").glob("*.yaml")}
    assert names == {"finetune": "l2", "l2sp": "l2sp", "at": "at", "delta": "delta", "bss": "bss",
                     "tred_max_mmd": "tred-max_mmd", "tred_min_mi": "tred-min_mi",
                     "tred_max_mmd_min_mi": "tred-max_mmd_min_mi", "tred_mask_max_mmd": "tred-mask-max_mmd",
                     "tred_mask_min_mi": "tred-mask-min_mi", "tred_mask_max_mmd_min_mi": "tred-mask-max_mmd_min_mi",
                     "tred_full": "tred-full"}
    assert sorted(names.values()) == sorted(PAPER_ORDER)


def test_method_preset_composes():
    from conftest import compose_cfg

    cfg = compose_cfg(["method=finetune", "disentangle=max_mmd"])
    assert list(cfg.regularizer) == ["l2"]


def test_validation_runs_are_not_test_results(sweep, capsys):
    path = sweep / "l2" / "elpv" / "sr1.0" / "seed0" / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "eval_split": "val"}))
    untouched = _keep_table(sweep)
    assert make_table([str(sweep)]) == 2
    assert "tune_summary" in capsys.readouterr().err and untouched()


@pytest.fixture
def paired_sweep(tmp_path):
    """Fine-tuning and L2-SP on two datasets; L2-SP's digits seed 2 failed."""
    root = tmp_path / "paired"
    accs = {("l2", "elpv"): [80.0, 82.0, 84.0], ("l2sp", "elpv"): [81.0, 84.0, 85.5],
            ("l2", "digits"): [60.0, 62.0, 64.0], ("l2sp", "digits"): [59.0, 61.5, None]}
    regs = {"l2": {"l2": {"weight_decay": 1e-5}}, "l2sp": {"l2sp": {"alpha": 0.001, "beta": 0.01}}}
    for (m, ds), values in accs.items():
        for seed, acc in enumerate(values):
            write_run(root, m, ds, seed, acc, status="completed" if acc is not None else "failed",
                      reg=regs[m], note="Chosen on held-out data.")
    return root


def test_paired_differences_by_hand(paired_sweep):
    t = build_table(paired_sweep)
    # elpv: d = (1, 2, 1.5): mean 1.5, sd 0.5, half = 4.3027 * 0.5 / sqrt(3) = 1.24208 -> better
    p = t.paired[("l2sp", "elpv")]
    assert (p.mean, p.n, p.verdict) == (pytest.approx(1.5), 3, "better")
    assert (p.low, p.high) == (pytest.approx(1.5 - 1.24208, abs=1e-4), pytest.approx(1.5 + 1.24208, abs=1e-4))
    # digits, seed 2 missing: d = (-1, -0.5): mean -0.75, sd 0.35355, half = 12.7062 * 0.35355 / sqrt(2)
    p = t.paired[("l2sp", "digits")]
    assert (p.mean, p.n, p.verdict) == (pytest.approx(-0.75), 2, "n.s.")
    assert p.low == pytest.approx(-0.75 - 3.17655, abs=1e-4)
    # Avg.: per-seed means over both columns, seeds 0 and 1 only: d = (0, 0.75)
    p = t.paired[("l2sp", "Avg.")]
    assert (p.mean, p.n) == (pytest.approx(0.375), 2)
    assert p.high == pytest.approx(0.375 + 12.7062 * 0.53033 / math.sqrt(2), abs=1e-3)
    assert ("l2", "elpv") not in t.paired


def test_paired_table_in_markdown_latex_csv(paired_sweep):
    t = build_table(paired_sweep)
    md = to_markdown(t)
    assert "| Δ vs Fine-tune | digits | elpv | Avg. |" in md
    assert "| L2-SP | -0.8 [-3.9, +2.4] (n=2) | +1.5 [+0.3, +2.7] ↑ | +0.4 [-4.4, +5.1] (n=2) |" in md
    assert ("Weights: Fine-tune (L2) weight_decay=1e-05; L2-SP alpha=0.001. Chosen on held-out data."
            in md)
    tex = to_latex(t)
    assert "L2-SP & -0.8 [-3.9, +2.4]\\,(n=2) & +1.5 [+0.3, +2.7] $\\uparrow$ & +0.4 [-4.4, +5.1]\\,(n=2) \\\\" in tex
    csv = to_csv_frame(t).set_index("method")
    assert csv.at["l2sp", "elpv diff_vs_ft mean"] == pytest.approx(1.5)
    assert csv.at["l2sp", "elpv diff_vs_ft low"] == pytest.approx(1.5 - 1.24208, abs=1e-4)
    assert csv.at["l2sp", "Avg. diff_vs_ft n"] == 2 and csv.at["l2sp", "elpv diff_vs_ft verdict"] == "better"
    assert csv.at["l2sp", "weights"] == "alpha=0.001" and math.isnan(csv.at["l2", "elpv diff_vs_ft mean"])
    # every paired cell of the markdown has its numbers in the csv (the W&B table is this frame)
    assert {c for c in csv.columns if "diff_vs_ft" in c} == {
        f"{c} diff_vs_ft {p}" for c in ("digits", "elpv", "Avg.") for p in ("mean", "low", "high", "n", "verdict")}


def test_tred_rows_against_the_best_baseline(paired_sweep):
    """The baseline with the highest average (here DELTA, not L2-SP) is the TRED rows' second reference."""
    delta = {"delta": {"alpha": 1e-5, "beta": 0.01}}
    tred = {"tred": {"alpha": 1e-5, "beta": 0.01, "reference": "full"}}
    for seed, (d_elpv, d_digits, t_elpv, t_digits) in enumerate(
            [(83.0, 61.0, 84.0, 61.0), (85.0, 63.0, 85.0, 65.0), (86.0, 65.0, 87.0, 66.0)]):
        write_run(paired_sweep, "delta", "elpv", seed, d_elpv, reg=delta)
        write_run(paired_sweep, "delta", "digits", seed, d_digits, reg=delta)
        write_run(paired_sweep, "tred-full", "elpv", seed, t_elpv, reg=tred)
        write_run(paired_sweep, "tred-full", "digits", seed, t_digits, reg=tred)
    t = build_table(paired_sweep)
    assert t.best_baseline == "delta"
    assert set(t.paired_best) == {("tred-full", c) for c in ("elpv", "digits", "Avg.")}
    # elpv: tred-full - delta = (1, 0, 1): mean 2/3, sd 0.57735, half 4.302653 * 0.57735 / sqrt(3) = 1.43422
    p = t.paired_best[("tred-full", "elpv")]
    assert (p.mean, p.n, p.verdict) == (pytest.approx(2 / 3), 3, "n.s.")
    assert p.low == pytest.approx(2 / 3 - 1.43422, abs=1e-4)
    md = to_markdown(t)
    assert "| Δ vs DELTA | digits | elpv | Avg. |" in md and "the best baseline, DELTA" in md
    block = md.split("| Δ vs DELTA |")[1]
    assert "| TRED-full (no stage 1) | +1.0 [-1.5, +3.5] | +0.7 [-0.8, +2.1] | +0.8 [+0.1, +1.6] ↑ |" in block
    assert "| L2-SP |" not in block  # only the TRED rows are compared with the best baseline
    assert "$\\Delta$ vs DELTA" in to_latex(t)
    csv = to_csv_frame(t).set_index("method")
    assert csv.at["tred-full", "elpv diff_vs_best mean"] == pytest.approx(2 / 3)
    assert csv.at["tred-full", "best_baseline"] == "delta" and math.isnan(csv.at["l2sp", "elpv diff_vs_best mean"])


def test_no_paired_table_without_finetuning(paired_sweep):
    import shutil

    shutil.rmtree(paired_sweep / "l2")
    t = build_table(paired_sweep)
    assert t.paired == {} and "Δ vs Fine-tune" not in to_markdown(t)


def test_paired_difference_plot(paired_sweep):
    assert make_table([str(paired_sweep)]) == 0
    png = paired_sweep / "plots" / "paired_difference_vs_finetune.png"
    assert png.is_file() and mpimg.imread(png).shape[0] > 100


def test_health_warnings_threads_and_versions_are_shown(tmp_path):
    root = tmp_path / "h"
    lib = {"torch": "2.14.1", "numpy": "2.1.0"}
    for seed in (0, 1):
        write_run(root, "l2", "digits", seed, 60.0 + seed,
                  extra={"threads": 1, "versions": lib, "code_version": {"commit": "abcdef0123456789", "dirty": False}})
        write_run(root, "l2sp", "digits", seed, 10.0 if seed else 61.0,
                  extra={"threads": 2 if seed else 1, "versions": lib,
                         "code_version": {"commit": "abcdef0123456789", "dirty": seed == 1},
                         "warnings": ["test accuracy 10.0% is at chance level (10 classes)"] if seed else []})
    md = to_markdown(build_table(root))
    main = md.split("\n\n")[0]
    assert "| L2-SP | 35.5 ± 36.1! |" in main and "| Fine-tune (L2) | **60.5 ± 0.7** |" in main
    assert ("! = the cell averages 1 run(s) that reported a health warning: "
            "l2sp/digits/sr1.0/seed1: test accuracy 10.0% is at chance level (10 classes).") in md
    assert "runs differ in CPU threads (1, 2): a table is reproducible bit for bit only with the same launcher" in md
    assert ("runs differ in versions: code abcdef0123+dirty, numpy 2.1.0, torch 2.14.1 | "
            "code abcdef0123, numpy 2.1.0, torch 2.14.1.") in md


def test_stage1_checks_plot(tmp_path):
    root = tmp_path / "s1"
    diag = {"disentangle_diagnostics_split": "test", "disentangle_relevant_test_acc": 80.0,
            "source_probe_test_acc": 85.0, "disentangle_irrelevant_probe_test_acc": 12.0,
            "disentangle_reference_gap": 0.3, "num_classes": 10}
    for seed in (0, 1):
        write_run(root, "l2", "digits", seed, 60.0)
        write_run(root, "tred-max_mmd", "digits", seed, 61.0, extra=diag)
    assert make_table([str(root)]) == 0
    png = root / "plots" / "stage1_checks.png"
    assert png.is_file() and mpimg.imread(png).shape[0] > 100


def test_cost_note_from_the_runs_own_times(tmp_path):
    root = tmp_path / "c"
    for seed, (wall, s1, ft, gap) in enumerate([(100.0, 10.0, 80.0, 0.5), (200.0, 30.0, 150.0, 2.0)]):
        write_run(root, "l2", "digits", seed, 60.0, extra={"wall_time_s": 3600.0 + seed})
        write_run(root, "tred-max_mmd", "digits", seed, 61.0, extra={
            "wall_time_s": wall, "stage1_time_s": s1, "finetune_time_s": ft, "disentangle_reference_gap": gap})
    md = to_markdown(build_table(root))
    # 3600 + 3601 + 100 + 200 = 7501 s; median of (100, 200, 3600, 3601) = 1900 s; 10/80, 30/150
    assert ("Cost: 4 completed runs, 2h05m of run time in all (sum of wall_time_s), median 31m40s per run; "
            "TRED stage 1 = 12-20% of the fine-tuning time, reference gap 0.5-2.") in md
