"""TRED's estimators: mmd2 against a direct double loop, CLUB against closed-form Gaussian values."""

from __future__ import annotations

import math

import pytest
import torch

from tred.stage1.estimators import CLUB, mmd2

ALPHAS = (1 / 8, 1 / 4, 1 / 2, 1, 2)


pytestmark = pytest.mark.usefixtures("one_thread")


def mmd2_loop(x, y, alphas=ALPHAS):
    """Biased MMD^2 by explicit loops over pairs; bandwidth from the mean over pairs p != q, held constant."""
    z = list(torch.cat([x, y]))
    n, t = len(x), len(z)
    d2 = [[float(((z[p] - z[q]) ** 2).sum()) for q in range(t)] for p in range(t)]
    s = sum(d2[p][q] for p in range(t) for q in range(t) if p != q) / (t * (t - 1))

    def k(p, q):
        return sum(math.exp(-d2[p][q] / (2 * a * s)) for a in alphas)

    xx = sum(k(i, j) for i in range(n) for j in range(n)) / n**2
    yy = sum(k(i, j) for i in range(n, t) for j in range(n, t)) / (t - n) ** 2
    xy = sum(k(i, j) for i in range(n) for j in range(n, t)) / (n * (t - n))
    return xx + yy - 2 * xy


def test_mmd2_matches_double_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(7, 3, generator=g, dtype=torch.float64) + 0.7
    assert float(mmd2(x, y)) == pytest.approx(mmd2_loop(x, y), rel=1e-9)
    assert float(mmd2(x, y, (1.0,))) == pytest.approx(mmd2_loop(x, y, (1.0,)), rel=1e-9)


def test_mmd2_gradient_treats_bandwidth_as_constant():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 2, generator=g, dtype=torch.float64)
    mmd2(x, y).backward()
    # reference: the same estimator written pairwise, with the bandwidth computed on detached inputs
    z = torch.cat([x, y])
    zd = z.detach()
    s = sum(((zd[p] - zd[q]) ** 2).sum() for p in range(7) for q in range(7) if p != q) / 42
    k = [[sum(torch.exp(-((z[p] - z[q]) ** 2).sum() / (2 * a * s)) for a in ALPHAS) for q in range(7)]
         for p in range(7)]
    ref = (sum(k[i][j] for i in range(4) for j in range(4)) / 16
           + sum(k[i][j] for i in range(4, 7) for j in range(4, 7)) / 9
           - 2 * sum(k[i][j] for i in range(4) for j in range(4, 7)) / 12)
    (gx,) = torch.autograd.grad(ref, x)
    assert torch.allclose(x.grad, gx, rtol=1e-9, atol=1e-12)


def test_mmd2_near_zero_for_one_distribution_and_growing_with_separation():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    values = [float(mmd2(x, y + torch.tensor([s, 0.0]))) for s in shifts]
    # same distribution: the V-statistic's bias is O(1/n) per kernel (5 kernels of value <= 1)
    assert abs(values[0]) < 5 * 2 / 200
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert values[-1] > 1.0  # far apart: the cross term vanishes, MMD^2 -> k_xx + k_yy


def correlated_gaussians(n: int, d: int, rho: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g)


def club_limit(d: int, rho: float) -> float:
    """CLUB with the exact conditional q = p(y|x) on y = rho x + noise, per dimension:
    E_joint[-(y - rho x)^2] - E_x E_y[-(y - rho x)^2], over 2 (1 - rho^2), = rho^2 / (1 - rho^2)."""
    return d * rho**2 / (1 - rho**2)


def test_club_with_the_exact_conditional_equals_its_closed_form():
    d, rho = 3, 0.6
    club = CLUB(d, d, hidden=2 * d)
    with torch.no_grad():  # mu(x) = rho * (relu(x) - relu(-x)) = rho x; logvar = log(1 - rho^2)
        club.mu[0].weight.copy_(torch.cat([torch.eye(d), -torch.eye(d)])), club.mu[0].bias.zero_()
        club.mu[2].weight.copy_(rho * torch.cat([torch.eye(d), -torch.eye(d)], 1)), club.mu[2].bias.zero_()
        for p in club.logvar.parameters():
            p.zero_()
        club.logvar[2].bias.fill_(math.log(1 - rho**2))
        x, y = correlated_gaussians(20000, d, rho, seed=3)
        assert float(club(x, y)) == pytest.approx(club_limit(d, rho), rel=0.05)


def fitted_club(x, y, steps=300):
    torch.manual_seed(0)
    club = CLUB(x.shape[1], y.shape[1], hidden=16)
    opt = torch.optim.Adam(club.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        (-club.log_likelihood(x, y)).backward()
        opt.step()
    return club


def test_club_near_zero_for_independent_gaussians():
    x, _ = correlated_gaussians(2048, 2, 0.0, seed=4)
    _, y = correlated_gaussians(2048, 2, 0.0, seed=5)
    club = fitted_club(x, y)
    with torch.no_grad():
        xt, _ = correlated_gaussians(4096, 2, 0.0, seed=6)
        _, yt = correlated_gaussians(4096, 2, 0.0, seed=7)
        assert abs(float(club(xt, yt))) < 0.1


def test_club_on_correlated_gaussians_is_an_upper_bound_near_its_limit():
    d, rho = 2, 0.7
    true_mi = -d / 2 * math.log(1 - rho**2)  # 0.67 nats
    club = fitted_club(*correlated_gaussians(2048, d, rho, seed=8))
    with torch.no_grad():
        estimate = float(club(*correlated_gaussians(4096, d, rho, seed=9)))  # held-out pairs
    # CLUB is tight only at independence: with a well-fitted q it approaches d rho^2/(1-rho^2) = 1.92,
    # not the true MI; it must stay above the true value.
    assert estimate > true_mi
    assert estimate == pytest.approx(club_limit(d, rho), rel=0.15)
