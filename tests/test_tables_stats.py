"""Paired statistics (tred/tables/stats.py) against values worked out by hand and printed t tables."""

from __future__ import annotations

import math

import pytest

from tred.tables.stats import BETTER, UNRESOLVED, WORSE, Paired, holm, paired_difference, t_cdf, t_quantile


@pytest.mark.parametrize("df, q", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                   (29, 2.0452), (100, 1.9840)])
def test_t_quantile_matches_the_printed_table(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q, abs=1e-4)


def test_t_cdf_cauchy_closed_form():
    for x in (-3.0, -0.5, 0.0, 1.0, 7.0):  # df = 1 is the Cauchy distribution
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-9)


def test_paired_difference_by_hand():
    # d = (1, 2, 4): mean 7/3, sd = sqrt(7/3), half width = 4.3027 * sd / sqrt(3) = 3.7946
    p = paired_difference({0: 71.0, 1: 72.0, 2: 74.0}, {0: 70.0, 1: 70.0, 2: 70.0})
    assert (p.mean, p.n) == (pytest.approx(7 / 3), 3)
    assert (p.low, p.high) == (pytest.approx(7 / 3 - 3.79458, abs=1e-4), pytest.approx(7 / 3 + 3.79458, abs=1e-4))
    assert p.verdict == UNRESOLVED  # the interval contains 0


def test_pairing_removes_the_shared_seed_spread():
    # The seeds differ by 10 points, the method is always 1 better: unpaired stds would hide it.
    p = paired_difference({0: 61.0, 1: 71.0, 2: 81.5}, {0: 60.0, 1: 70.0, 2: 80.0})
    # d = (1, 1, 1.5): mean 7/6, sd = sqrt(1/12), half = 4.3027 * sd / sqrt(3) = 0.71712
    assert p.low == pytest.approx(7 / 6 - 0.71712, abs=1e-4) and p.verdict == BETTER
    assert paired_difference({0: 59.0, 1: 69.0, 2: 78.5}, {0: 60.0, 1: 70.0, 2: 80.0}).verdict == WORSE


def test_missing_seed_and_single_pair():
    # seed 2 failed for the method (nan) and seed 3 only exists for the reference: pairs 0 and 1
    p = paired_difference({0: 72.0, 1: 74.0, 2: math.nan}, {0: 70.0, 1: 70.0, 2: 70.0, 3: 75.0})
    # d = (2, 4): mean 3, sd = sqrt(2), half = 12.7062 * sqrt(2) / sqrt(2) = 12.7062
    assert (p.n, p.mean) == (2, 3.0)
    assert (p.low, p.high) == (pytest.approx(3 - 12.7062, abs=1e-4), pytest.approx(3 + 12.7062, abs=1e-4))
    one = paired_difference({0: 72.0}, {0: 70.0, 1: 71.0})
    assert (one.n, one.mean) == (1, 2.0) and math.isnan(one.low) and one.verdict == UNRESOLVED
    none = paired_difference({}, {0: 70.0})
    assert none.n == 0 and math.isnan(none.mean) and none.verdict == UNRESOLVED


def test_zero_spread_is_resolved():
    p = paired_difference({0: 71.0, 1: 72.0}, {0: 70.0, 1: 71.0})
    assert (p.low, p.high, p.verdict) == (1.0, 1.0, BETTER)


def test_p_value_by_hand():
    # d = (1, 1, 1.5): t = (7/6) / (sqrt(1/12) / sqrt(3)) = 7 on 2 degrees of freedom, where
    # P(T > t) = 1/2 - t / (2 sqrt(2 + t^2)) in closed form: p = 1 - 7 / sqrt(51)
    p = paired_difference({0: 61.0, 1: 71.0, 2: 81.5}, {0: 60.0, 1: 70.0, 2: 80.0})
    assert p.p == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-9)
    assert math.isnan(paired_difference({0: 72.0}, {0: 70.0}).p)


def test_holm_step_down_by_hand():
    def pd(p):
        return Paired(1.0, 0.5, 1.5, 3, p)

    # p 0.01, 0.02, 0.04 -> 0.03, max(0.03, 0.04), max(0.04, 0.04): all three below 0.05
    out = holm({("a", "c"): pd(0.04), ("b", "c"): pd(0.01), ("d", "c"): pd(0.02)})
    assert [round(out[(m, "c")].p_adjusted, 12) for m in "bda"] == [0.03, 0.04, 0.04]
    assert all(v.verdict == BETTER for v in out.values())
    # p 0.01, 0.03, 0.04 -> 0.03, 0.06, 0.06: only the first survives; uncorrected all would
    out = holm({("a", "c"): pd(0.04), ("b", "c"): pd(0.01), ("d", "c"): pd(0.03)})
    assert [out[(m, "c")].verdict for m in "bda"] == [BETTER, UNRESOLVED, UNRESOLVED]
    assert all(pd(p).verdict == BETTER for p in (0.01, 0.03, 0.04))
    # each column is its own family; a row without a p-value (one pair) is left out
    out = holm({("a", "x"): pd(0.03), ("a", "y"): pd(0.03), ("b", "y"): Paired(2.0, math.nan, math.nan, 1)})
    assert out[("a", "x")].p_adjusted == pytest.approx(0.03) and out[("a", "y")].p_adjusted == pytest.approx(0.03)
    assert math.isnan(out[("b", "y")].p_adjusted)
