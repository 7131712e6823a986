"""Paired statistics for tables: a method against a reference, seed by seed.

Two runs with the same seed share the training subset, the initial head and the augmentation
stream, so the seed-to-seed spread that both see cancels in their difference. For a method m
and the reference r (fine-tuning) on the seeds S where both completed:

    d_s  = acc(m, s) - acc(r, s),   s in S,  n = |S|
    mean = (1/n) sum_s d_s,   sd = sample std of d_s (ddof = 1)
    95% CI = mean ± t_{0.975, n-1} * sd / sqrt(n)       (Student t; undefined for n < 2)

A method is marked better (worse) only when the whole interval is above (below) zero. No scipy:
the t quantile is found by bisection on the t CDF, integrated numerically (exact to ~1e-9).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

BETTER, WORSE, UNRESOLVED = "better", "worse", "n.s."


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with `df` degrees of freedom (Simpson's rule on the density)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if x == 0:
        return 0.5
    # Substituting t = tan(u) maps (-inf, x] onto (-pi/2, atan(x)] with a smooth, bounded integrand.
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def integrand(u: float) -> float:
        t = math.tan(u)
        return math.exp(log_c - (df + 1) / 2 * math.log1p(t * t / df)) * (1 + t * t)

    a, b, n = 0.0, math.atan(abs(x)), 2000  # integrate from 0 to |x|, then use symmetry
    h = (b - a) / n
    s = integrand(a) + integrand(b) + sum((4 if i % 2 else 2) * integrand(a + i * h) for i in range(1, n))
    half = s * h / 3
    return 0.5 + half if x > 0 else 0.5 - half


@functools.lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """The x with P(T <= x) = p."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Paired:
    """A paired difference: mean, 95% interval (nan when n < 2) and the seeds it used."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        if math.isnan(self.low):
            return UNRESOLVED
        return BETTER if self.low > 0 else WORSE if self.high < 0 else UNRESOLVED


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
    return Paired(mean, mean - half, mean + half, n)
