"""Penalties as pure tensor functions, callable from any training loop.

Conventions: `fm_t` is a feature map (B x C x H x W) of the network being trained, `fm_s` the
same layer of the frozen source model; source tensors are treated as constants (no gradient
flows into them). Each function's docstring gives its formula and the paper it comes from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# --- fine-tuning baselines (L2-SP, AT, DELTA, BSS) -------------------------------------------


def l2sp_penalty(params, ref_params) -> torch.Tensor:
    """L2-SP starting-point distance (Li, Grandvalet, Davoine, ICML 2018).

    0.5 * sum_i ||w_i - w0_i||^2 over the pairs (params[i], ref_params[i]). The reference
    weights are constants. One fused `_foreach` pass instead of a Python loop per tensor.
    """
    params = list(params)
    if not params:
        raise ValueError("l2sp_penalty needs at least one parameter")
    refs = [r.detach() for r in ref_params]
    if len(refs) != len(params):
        raise ValueError(f"l2sp_penalty: {len(params)} parameters but {len(refs)} references")
    norms = torch._foreach_norm(torch._foreach_sub(params, refs))
    return 0.5 * torch.stack(norms).pow(2).sum()


def attention_map(fm: torch.Tensor, p: float = 2) -> torch.Tensor:
    """a(x) = L2-normalize(mean_c x^p), flattened per sample: B x (H*W)."""
    return F.normalize(fm.pow(p).mean(dim=1).flatten(1), dim=1)


def at_penalty(fm_t: torch.Tensor, fm_s: torch.Tensor, p: float = 2) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis, ICLR 2017), for one layer.

    mean_{b, hw} (a(fm_t) - a(fm_s))^2 with a = `attention_map` (the `at_loss` of the original
    code, which multiplies the sum over layers by beta/2; our regularizer uses beta, docs/regularizers.md).
    """
    return (attention_map(fm_t, p) - attention_map(fm_s.detach(), p)).pow(2).mean()


def delta_penalty(fm_t: torch.Tensor, fm_s: torch.Tensor, channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """DELTA feature-map distance (Li et al., ICLR 2019), for one layer.

    0.5 * sum_{b,c} C * W_c * ||fm_t[b,c] - fm_s[b,c]||^2 / (H*W), with W_c = 1/C when
    `channel_weights` is None (uniform), i.e. 0.5 * sum_{b,c,h,w} (fm_t - fm_s)^2 / (H*W).
    The sum over the batch follows the original DELTA code, so its published weights keep
    their meaning.
    """
    b, c, h, w = fm_t.shape
    sq = (fm_t - fm_s.detach()).pow(2).sum(dim=(2, 3)) / (h * w)  # B x C
    if channel_weights is None:
        return 0.5 * sq.sum()
    if channel_weights.shape != (c,):
        raise ValueError(f"delta_penalty: channel_weights of shape {tuple(channel_weights.shape)} for {c} channels")
    return 0.5 * c * (sq * channel_weights.detach().to(sq.dtype).view(1, c)).sum()


def relative_penalty(fm_t: torch.Tensor, ref: torch.Tensor, fm_s: torch.Tensor,
                     channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Scale-free feature-map distance, for one layer: the DELTA distance of the batch divided by
    the same sum over the source map itself,

        sum_{b,c} C W_c ||fm_t[b,c] - ref[b,c]||^2 / sum_{b,c} C W_c ||fm_s[b,c]||^2,

    so 1 means "as far from the reference as the source map is from zero", whatever the layer's
    magnitude, channel count, resolution or batch size (DELTA's own distance grows with all four).
    """
    zero = torch.zeros((), dtype=fm_s.dtype, device=fm_s.device)  # broadcast: no map-sized zeros
    energy = delta_penalty(fm_s.detach(), zero, channel_weights).clamp_min(1e-12)
    return delta_penalty(fm_t, ref, channel_weights) / energy


def bss_penalty(features: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Batch spectral shrinkage (Chen et al., NeurIPS 2019).

    sum_{i=1..k} sigma_{-i}(F)^2: the k smallest of the min(B, D) singular values of the
    B x D feature matrix F, squared (the original code takes the SVD of F^T, same values).

    Non-finite features (a diverging run) give NaN, as every other term does, instead of
    LAPACK's `LinAlgError`: the training loop then names the iteration and the term.
    """
    n = min(features.shape[-2:])
    if not 0 < k <= n:
        raise ValueError(f"bss_penalty: k={k} but the {tuple(features.shape)} feature matrix has {n} singular values")
    bad = ~torch.isfinite(features).all()  # a tensor, not a bool: no device sync here
    safe = torch.where(bad, torch.zeros_like(features), features)
    try:
        sv = torch.linalg.svdvals(safe)  # descending, length min(B, D)
    except torch.linalg.LinAlgError:  # no convergence on finite but extreme values: diverged too
        return features.new_full((), float("nan"))
    return torch.where(bad, torch.full_like(sv[0], float("nan")), sv[-k:].pow(2).sum())


def head_l2_penalty(head: torch.nn.Module) -> torch.Tensor:
    """0.5 * ||w_head||^2 over the weight (not the bias) of the new classifier layer."""
    return 0.5 * head.weight.pow(2).sum()
