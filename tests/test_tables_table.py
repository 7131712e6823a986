"""The numbers of a table (tred/tables/table.py) on hand-written run directories: cells, seed
counts, missing runs, averages, gains and the paired differences, each worked out below."""

from __future__ import annotations

import math

import pytest

from tests.fake_runs import add_delta_and_tred_full, paired_sweep, rates_sweep, small_sweep
from tred.tables.table import build_table


def test_cells_means_stds_missing(tmp_path):
    t = build_table(small_sweep(tmp_path / "sweep"))
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


def test_sample_rates_are_columns(tmp_path):
    t = build_table(rates_sweep(tmp_path / "sweep"))
    assert t.columns == ["digits 50%", "digits 100%"]
    assert t.summary.at["tred-max_mmd", ("Gain vs FT", "mean")] == pytest.approx(5.0)


def test_paired_differences_by_hand(tmp_path):
    t = build_table(paired_sweep(tmp_path / "paired"))
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


def test_tred_rows_against_the_best_baseline(tmp_path):
    """The baseline with the highest average (here DELTA, not L2-SP) is the TRED rows' second reference."""
    t = build_table(add_delta_and_tred_full(paired_sweep(tmp_path / "paired")))
    assert t.best_baseline == "delta"
    assert set(t.paired_best) == {("tred-full", c) for c in ("elpv", "digits", "Avg.")}
    # elpv: tred-full - delta = (1, 0, 1): mean 2/3, sd 0.57735, half 4.302653 * 0.57735 / sqrt(3) = 1.43422
    p = t.paired_best[("tred-full", "elpv")]
    assert (p.mean, p.n, p.verdict) == (pytest.approx(2 / 3), 3, "n.s.")
    assert p.low == pytest.approx(2 / 3 - 1.43422, abs=1e-4)
