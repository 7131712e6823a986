"""Paired statistics for tables: a method against a reference, seed by seed.

Two runs with the same seed share the training subset, the initial head and the augmentation
stream, so the seed-to-seed spread that both see cancels in their difference. For a method m
and the reference r (fine-tuning) on the seeds S where both completed:

    d_s  = acc(m, s) - acc(r, s),   s in S,  n = |S|
    mean = (1/n) sum_s d_s,   sd = sample std of d_s (ddof = 1)
    95% CI = mean ± t_{0.975, n-1} * sd / sqrt(n)       (Student t, scipy; undefined for n < 2)
    p = two-sided p-value of the paired t test of mean = 0

A table compares many rows with one reference, so a block's arrows (`verdict`) use the p-values
after Holm's step-down correction across its rows (`holm`): with m rows sorted by p,
p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j)); a row is better (worse) only when p_adj < 0.05
and its mean is above (below) zero. The interval stays the uncorrected 95% one; for a single row
the two agree (p < 0.05 exactly when the interval excludes 0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from scipy import stats as _scipy_stats

BETTER, WORSE, UNRESOLVED = "better", "worse", "n.s."
ALPHA = 0.05


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(_scipy_stats.t.cdf(x, df))


def t_quantile(p: float, df: int) -> float:
    """The x with P(T <= x) = p."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    return float(_scipy_stats.t.ppf(p, df))


@dataclass(frozen=True)
class Paired:
    """A paired difference: mean, 95% interval (nan when n < 2) and the seeds it used."""

    mean: float
    low: float
    high: float
    n: int
    p: float = math.nan  # two-sided p-value of the paired t test (nan when n < 2)
    p_adjusted: float = math.nan  # after Holm's correction across a block's rows (nan: not corrected)

    @property
    def verdict(self) -> str:
        p = self.p if math.isnan(self.p_adjusted) else self.p_adjusted
        if math.isnan(p) or p >= ALPHA:
            return UNRESOLVED
        return BETTER if self.mean > 0 else WORSE


NO_PAIRS = Paired(math.nan, math.nan, math.nan, 0)


def paired_difference(a: dict, b: dict, level: float = 0.95) -> Paired:
    """`a` - `b` over the keys (seeds) both hold; values may be nan (= missing)."""
    seeds = sorted(s for s in a.keys() & b.keys() if not (math.isnan(a[s]) or math.isnan(b[s])))
    d = [a[s] - b[s] for s in seeds]
    n = len(d)
    if n == 0:
        return NO_PAIRS
    mean = sum(d) / n
    if n < 2:
        return Paired(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    if sd == 0:  # every seed moved by the same amount: resolved unless that amount is 0
        p = 1.0 if mean == 0 else 0.0
    else:
        p = 2 * float(_scipy_stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return Paired(mean, mean - half, mean + half, n, p)


def holm(paired: dict, by=lambda key: key[1]) -> dict:
    """`paired` ({key: Paired}) with `p_adjusted` set by Holm's step-down correction within each
    group of keys (`by`: the column, so the rows of one column of a block form a family)."""
    groups: dict = {}
    for key, pd in paired.items():
        if not math.isnan(pd.p):
            groups.setdefault(by(key), []).append(key)
    out = dict(paired)
    for keys in groups.values():
        keys = sorted(keys, key=lambda k: paired[k].p)
        m, running = len(keys), 0.0
        for i, key in enumerate(keys):
            running = max(running, min(1.0, (m - i) * paired[key].p))
            out[key] = dataclasses.replace(paired[key], p_adjusted=running)
    return out
