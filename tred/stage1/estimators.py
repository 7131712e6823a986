"""The estimators TRED's stage 1 separates its two parts with: MMD^2 and the CLUB MI bound.

Pure tensor code (no config, no data); each docstring gives the formula and its paper.
"""

from __future__ import annotations

import torch


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel_alphas=(1 / 8, 1 / 4, 1 / 2, 1, 2)) -> torch.Tensor:
    """Squared MMD between samples x (n x d) and y (m x d), biased V-statistic (Gretton et al., JMLR 2012).

    MMD^2 = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j), with a sum of
    Gaussian kernels k(u, v) = sum_a exp(-||u - v||^2 / (2 sigma_a^2)), sigma_a^2 = a * s and s the mean
    squared distance over the pairs (p != q) of the concatenated batch [x; y]. The bandwidth is a
    constant (detached): no gradient flows through it.
    """
    z = torch.cat([x, y])
    n, total = len(x), len(z)
    sq = z.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * z @ z.t()).clamp_min(0)
    scale = (d2.detach().sum() / max(total * (total - 1), 1)).clamp_min(torch.finfo(z.dtype).tiny)
    k = sum(torch.exp(-d2 / (2 * a * scale)) for a in kernel_alphas)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


class CLUB(torch.nn.Module):
    """CLUB mutual-information upper bound (Cheng et al., ICML 2020), Gaussian variational q(y | x).

    q(y | x) = N(mu(x), diag(exp(logvar(x)))), mu and logvar small MLPs. `log_likelihood` is what its
    own optimizer maximizes; `forward` is the estimate
        I_hat = mean_i log q(y_i | x_i) - mean_{i,j} log q(y_j | x_i)
    (the all-pairs form; a shuffled-pair version has this as its expectation). A plain module:
    other loops can use it as a penalty.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 256, logvar_limit: float = 5.0):
        super().__init__()
        nn = torch.nn
        self.mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim))
        self.logvar_limit = logvar_limit  # soft bound on log-variance, for stability (original: tanh, limit 1)

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lim = self.logvar_limit
        return self.mu(x), lim * torch.tanh(self.logvar(x) / lim)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """mean_i log q(y_i | x_i) (constants dropped), summed over dimensions."""
        mu, logvar = self.params(x)
        return (-(y - mu).pow(2) / (2 * logvar.exp()) - logvar / 2).sum(1).mean()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.params(x)
        inv_var = torch.exp(-logvar)
        positive = -(y - mu).pow(2) * inv_var / 2                           # B x d
        # mean_j (y_j - mu_i)^2 = mean_j y_j^2 - 2 mu_i mean_j y_j + mu_i^2, in O(B d)
        mean_sq = y.pow(2).mean(0, keepdim=True) - 2 * mu * y.mean(0, keepdim=True) + mu.pow(2)
        negative = -mean_sq * inv_var / 2
        return (positive - negative).sum(1).mean()
