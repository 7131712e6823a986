"""Penalties as pure tensor functions, callable from any training loop.

Conventions: `fm_t` is a feature map (B x C x H x W) of the network being trained, `fm_s` the
same layer of the frozen source model; source tensors are treated as constants (no gradient
flows into them). Each function's docstring gives its formula and the paper it comes from.
"""

from __future__ import annotations

import torch

# --- fine-tuning baselines (L2-SP, AT, DELTA, BSS) -------------------------------------------


# --- TRED estimators (MMD, CLUB) -------------------------------------------------------------
