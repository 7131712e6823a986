"""Penalties as pure tensor functions, callable from any training loop.

Conventions: `fm_t` is a feature map (B x C x H x W) of the network being trained, `fm_s` the
same layer of the frozen source model; source tensors are treated as constants (no gradient
flows into them). Each function's docstring gives its formula and the paper it comes from.
"""

from __future__ import annotations

import torch

# --- fine-tuning baselines (L2-SP, AT, DELTA, BSS) -------------------------------------------


def delta_penalty(fm_t: torch.Tensor, fm_s: torch.Tensor, channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """DELTA feature-map distance (Li et al., ICLR 2019), for one layer.

    0.5 * sum_{b,c} C * W_c * ||fm_t[b,c] - fm_s[b,c]||^2 / (H*W), with W_c = 1/C when
    `channel_weights` is None (uniform). The sum over the batch follows the original DELTA code,
    so its published weights keep their meaning.
    """
    b, c, h, w = fm_t.shape
    sq = (fm_t - fm_s.detach()).pow(2).sum(dim=(2, 3)) / (h * w)  # B x C
    if channel_weights is None:
        return 0.5 * sq.sum()
    return 0.5 * c * (sq * channel_weights.view(1, c)).sum()


def head_l2_penalty(head: torch.nn.Module) -> torch.Tensor:
    """0.5 * ||w_head||^2 over the weight (not the bias) of the new classifier layer."""
    return 0.5 * head.weight.pow(2).sum()


# --- TRED estimators (MMD, CLUB) -------------------------------------------------------------
