"""A table as text (tred/tables/render.py): markdown, LaTeX, the csv / W&B frame, the paired
blocks and the notes under the table, on hand-written run directories."""

from __future__ import annotations

import math
import shutil

import pytest
import yaml

from tests.fake_runs import add_delta_and_tred_full, paired_sweep, small_sweep, write_run
from tred.tables.render import to_csv_frame, to_latex, to_markdown
from tred.tables.runs import TableError
from tred.tables.table import build_table


@pytest.fixture
def table(tmp_path):
    return build_table(small_sweep(tmp_path / "sweep"))


@pytest.fixture
def paired(tmp_path):
    return paired_sweep(tmp_path / "paired")


def test_markdown_bold_and_dashes(table):
    md = to_markdown(table)
    main = md.split("\n\n")[0]  # the paired table below has rows of the same names
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in main.splitlines() if line.startswith("| ") and "Method" not in line}
    assert rows["Fine-tune (L2)"] == ["62.0 ± 2.0", "82.0 ± 2.0", "72.0", "+0.0"]
    assert rows["L2-SP"] == ["**71.0 ± 1.4** (n=2)", "87.0 ± 2.0", "**79.0**", "**+7.0**"]
    assert rows["TRED Max-MMD"] == ["—", "**90.0** (n=1)", "—", "—"]
    assert "Missing 6 of 18 runs (4 not run, 1 failed, 1 unfinished)" in md


def test_latex(table):
    tex = to_latex(table)
    for piece in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{lcccc}",
                  "L2-SP & \\textbf{71.0 $\\pm$ 1.4}\\,(n=2) & 87.0 $\\pm$ 2.0 & \\textbf{79.0} & \\textbf{+7.0} \\\\",
                  "TRED Max-MMD & --- & \\textbf{90.0}\\,(n=1) & --- & --- \\\\"):
        assert piece in tex


def test_csv_frame_holds_numbers(table):
    csv = to_csv_frame(table).set_index("method")
    assert csv.at["l2sp", "digits mean"] == pytest.approx(71.0)
    assert csv.at["l2sp", "digits std"] == pytest.approx(math.sqrt(2))
    assert csv.at["l2sp", "gain_vs_finetune"] == pytest.approx(7.0)
    assert math.isnan(csv.at["tred-max_mmd", "digits mean"])


def test_paired_table_in_markdown_latex_csv(paired):
    t = build_table(paired)
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


def test_tred_rows_against_the_best_baseline(paired):
    t = build_table(add_delta_and_tred_full(paired))
    md = to_markdown(t)
    assert "| Δ vs DELTA | digits | elpv | Avg. |" in md and "the best baseline, DELTA" in md
    block = md.split("| Δ vs DELTA |")[1]
    assert "| TRED-full (no disentangler) | +1.0 [-1.5, +3.5] | +0.7 [-0.8, +2.1] | +0.8 [+0.1, +1.6] ↑ |" in block
    assert "| L2-SP |" not in block  # only the TRED rows are compared with the best baseline
    assert "$\\Delta$ vs DELTA" in to_latex(t)
    csv = to_csv_frame(t).set_index("method")
    assert csv.at["tred-full", "elpv diff_vs_best mean"] == pytest.approx(2 / 3)
    assert csv.at["tred-full", "best_baseline"] == "delta" and math.isnan(csv.at["l2sp", "elpv diff_vs_best mean"])


def test_tred_rows_against_a_named_reference(paired):
    """`against=("tred-full",)` (make_table --against tred-full): the disentangled rows' difference
    to the same stage 2 toward the whole source map, in the markdown, LaTeX and csv."""
    root = add_delta_and_tred_full(paired)  # tred-full: elpv 84, 85, 87; digits 61, 65, 66
    for seed, (elpv, digits) in enumerate([(86.0, 62.0), (85.0, 66.0), (89.0, 67.0)]):
        write_run(root, "tred-max_mmd", "elpv", seed, elpv)
        write_run(root, "tred-max_mmd", "digits", seed, digits)
    assert "Δ vs TRED-full" not in to_markdown(build_table(root))  # only when asked for
    t = build_table(root, against=("tred-full",))
    md = to_markdown(t)
    block = md.split("| Δ vs TRED-full (no disentangler) | digits | elpv | Avg. |")[1]
    # digits d = (1, 1, 1): no spread; elpv d = (2, 0, 2): mean 4/3, half 4.302653 * 1.1547 / sqrt(3)
    # = 2.8685; Avg. per-seed means d = (1.5, 0.5, 1.5): mean 7/6, half 1.43422
    assert "| TRED Max-MMD | +1.0 [+1.0, +1.0] ↑ | +1.3 [-1.5, +4.2] | +1.2 [-0.3, +2.6] |" in block
    assert "| TRED-full (no disentangler) |" not in block and "| DELTA |" not in block
    assert "$\\Delta$ vs TRED-full" in to_latex(t)
    csv = to_csv_frame(t).set_index("method")
    assert csv.at["tred-max_mmd", "elpv diff_vs_tred-full mean"] == pytest.approx(4 / 3)
    assert csv.at["tred-max_mmd", "Avg. diff_vs_tred-full high"] == pytest.approx(7 / 6 + 1.43422, abs=1e-4)
    assert math.isnan(csv.at["tred-full", "elpv diff_vs_tred-full mean"])
    with pytest.raises(TableError, match="no such method"):
        build_table(root, against=("tred-projection",))


def test_no_paired_table_without_finetuning(paired):
    shutil.rmtree(paired / "l2")
    t = build_table(paired)
    assert t.paired == {} and "Δ vs Fine-tune" not in to_markdown(t)


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


def test_runs_on_different_cpu_kernels_are_told_apart(tmp_path):
    root = tmp_path / "k"
    for seed, isa in enumerate(("AVX512", "AVX2")):
        write_run(root, "l2", "digits", seed, 60.0, extra={"threads": 1, "versions": {"torch": "2.14.1"},
                                                            "machine": {"cpu_capability": isa}})
    with pytest.raises(TableError, match=r"different kernel settings \(native AVX2 \(unrecorded\): 1 run\(s\), "
                                         r"e\.g\. l2/digits/sr1\.0/seed1; native AVX512 \(unrecorded\): 1 run"):
        build_table(root)
    md = to_markdown(build_table(root, allow_mixed=True))
    assert ("runs differ in kernel settings (pooled with --allow-mixed): native AVX2 (unrecorded) | "
            "native AVX512 (unrecorded)") in md
    assert "runs differ in versions: cpu AVX2, torch 2.14.1 | cpu AVX512, torch 2.14.1." in md


def test_cost_note_from_the_runs_own_times(tmp_path):
    root = tmp_path / "c"
    for seed, (wall, s1, ft, gap) in enumerate([(100.0, 10.0, 80.0, 0.5), (200.0, 30.0, 150.0, 2.0)]):
        write_run(root, "l2", "digits", seed, 60.0, extra={"wall_time_s": 3600.0 + seed})
        write_run(root, "tred-max_mmd", "digits", seed, 61.0, extra={
            "wall_time_s": wall, "stage1_time_s": s1, "finetune_time_s": ft, "disentangle_reference_gap": gap})
    md = to_markdown(build_table(root))
    # 3600 + 3601 + 100 + 200 = 7501 s; median of (100, 200, 3600, 3601) = 1900 s; 10/80, 30/150
    assert ("Cost: 4 completed runs, 2h05m of run time in all (sum of wall_time_s), median 31m40s per run; "
            "TRED stage 1 as the runs spent it (a cache hit costs nothing), % of the fine-tuning time: "
            "TRED Max-MMD 12-20; reference gap 0.5-2.") in md
    # With each run's compute time of stage 1 (cache hits at their compute time), per TRED method
    root = tmp_path / "computed"
    for seed, (s1, ft) in enumerate([(40.0, 80.0), (30.0, 150.0)]):
        write_run(root, "l2", "digits", seed, 60.0, extra={"wall_time_s": 100.0})
        write_run(root, "tred-max_mmd", "digits", seed, 61.0, extra={
            "wall_time_s": 100.0, "stage1_time_s": 0.0, "stage1_compute_time_s": s1, "finetune_time_s": ft})
        write_run(root, "tred-min_mi", "digits", seed, 61.0, extra={
            "wall_time_s": 100.0, "stage1_time_s": 1.0, "stage1_compute_time_s": 8.0, "finetune_time_s": 80.0})
    md = to_markdown(build_table(root))
    assert ("TRED stage 1 as computed (a cache hit at its compute time), % of the fine-tuning time: "
            "TRED Max-MMD 20-50, TRED Min-MI 10.") in md
    assert "resumed" not in md  # runs that record no attempts (older ones) or one attempt
    # Runs resumed after an interruption are named (their times carry the earlier attempts')
    root = tmp_path / "resumed"
    for seed, attempts in enumerate([1, 3, 2]):
        write_run(root, "l2", "digits", seed, 60.0, extra={"wall_time_s": 100.0, "attempts": attempts})
    assert ("median 1m40s per run (2 resumed after an interruption, each with its earlier attempts' time "
            "up to the checkpoint it resumed from).") in to_markdown(build_table(root))
    # Runs that took over a tuning run's training: not resumed; how much of the sum that training is
    root = tmp_path / "adopted"
    for seed, (attempts, trained) in enumerate([(2, 90.0), (3, 80.0), (2, None)]):
        extra = {"wall_time_s": 100.0, "attempts": attempts}
        if trained:
            extra.update(trained_in=f"tune/l2/digits/sr1.0/seed{seed}/weight_scale=1.0", trained_time_s=trained)
        write_run(root, "l2", "digits", seed, 60.0, extra=extra)
    assert ("median 1m40s per run (1 resumed after an interruption, each with its earlier attempts' time up to "
            "the checkpoint it resumed from); 2 runs took over the finished training of the tuning run with the "
            "same weights and seed (reuse_from) and were only scored here: 2m50s of the sum is that training, "
            "spent in the tuning sweep.") in to_markdown(build_table(root))


def test_claim_check_states_the_default_and_the_best_tred_row(tmp_path):
    root = tmp_path / "claim"
    for seed, (ft, default, mmd, delta) in enumerate([(60.0, 63.0, 65.0, 62.0), (62.0, 65.0, 68.0, 63.0),
                                                      (64.0, 66.0, 69.5, 65.0)]):
        write_run(root, "l2", "digits", seed, ft)
        write_run(root, "tred-projection", "digits", seed, default, reg={"tred": {"alpha": 1e-4}})
        write_run(root, "tred-max_mmd", "digits", seed, mmd)
        write_run(root, "delta", "digits", seed, delta, reg={"delta": {"alpha": 1e-4}})
    md = to_markdown(build_table(root))
    # default: d = 3, 3, 2 -> mean 2.67, sd 0.577, half 4.303 * 0.577 / sqrt(3) = 1.43 -> [+1.2, +4.1]
    # Max-MMD: d = 5, 6, 5.5 -> mean 5.5, sd 0.5, half 1.24 -> [+4.3, +6.7]: +2 shown
    assert ("Claim check: TRED's default, TRED-projection (class-mean split) is +2.7 [+1.2, +4.1] over "
            "fine-tuning: +2 is unresolved (the interval contains +2); against the best baseline, DELTA, "
            "+1.3 [-0.1, +2.8] (not resolved, Holm-corrected); the best TRED row by test mean (picked on "
            "this table, so an optimistic figure), TRED Max-MMD is +5.5 [+4.3, +6.7] over fine-tuning: "
            "+2 is shown (the whole interval is above +2)") in md


def test_an_updated_tuned_files_note_is_mentioned_once(tmp_path):
    """Rows run before and after `tune_summary --update` carry the earlier note and the same note
    with the re-tuning added: the caption says the longer one, once; two unrelated notes both stay."""
    root = paired_sweep(tmp_path / "p")
    for d in [*root.glob("l2/*/*/seed0"), *root.glob("l2/*/*/seed1")]:
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["weights_note"] = "Chosen on held-out data. Re-tuned in sweep `edges`: l2."
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    md = to_markdown(build_table(root))
    assert md.count("Chosen on held-out data.") == 1 and "Re-tuned in sweep `edges`: l2." in md
    d = next(iter(root.glob("l2sp/*/*/seed0")))
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["weights_note"] = "Typed by hand."
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    md = to_markdown(build_table(root))
    assert "Typed by hand." in md and md.count("Chosen on held-out data.") == 1
