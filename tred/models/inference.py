"""A faster copy of a frozen network for inference-only work (DELTA's channel scores).

`inference_copy(module, example)` returns a deep copy in eval mode with

- every BatchNorm folded into the convolution that feeds it (`y = conv'(x)` with
  `W' = W * g / sqrt(v + eps)` and `b' = (b - m) * g / sqrt(v + eps) + beta`); the BatchNorm is
  replaced by what it ran after normalizing (timm's `BatchNormAct2d`: its dropout and activation);
- 4-D parameters in channels_last memory format (inputs should be channels_last too).

Both are exact in real arithmetic; in float32 they change results by rounding only. Pairs are
found by running `example` once and matching each BatchNorm's input to the convolution output it
is (the same tensor object), and the copy is checked against the original on `example`: when
they disagree beyond rounding, `FoldMismatch` is raised and nothing is returned.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

# Relative tolerance of the check against the original (float32 rounding is ~1e-6).
CHECK_RTOL = 1e-3


class FoldMismatch(RuntimeError):
    """The folded copy does not reproduce the original network."""


def _foldable_bn(m: nn.Module) -> bool:
    # Subclasses other than timm's BatchNormAct2d may do more than normalize: leave them alone.
    return (type(m) is nn.BatchNorm2d or type(m).__name__ == "BatchNormAct2d") and not m.training \
        and m.running_mean is not None


def conv_bn_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, batchnorm name) for each BatchNorm that reads a convolution's output directly."""
    names = {id(m): n for n, m in module.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (conv name, output kept alive)
    pairs: list[tuple[str, str]] = []
    handles = []
    for _name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(
                lambda mod, _inp, out: produced.__setitem__(id(out), (names[id(mod)], out))))
        elif _foldable_bn(m):
            def pre(mod, inp):
                hit = produced.get(id(inp[0]))
                if hit is not None and hit[1] is inp[0]:
                    pairs.append((hit[0], names[id(mod)]))
            handles.append(m.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    convs = [c for c, _ in pairs]
    # A convolution feeding two BatchNorms cannot be folded into both.
    return [(c, b) for c, b in pairs if convs.count(c) == 1]


def _bn_replacement(bn: nn.Module) -> nn.Module:
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(*rest) if rest else nn.Identity()


def fold_batchnorm(module: nn.Module, example: torch.Tensor) -> int:
    """Fold every conv -> BatchNorm pair of `module` in place; returns how many were folded."""
    pairs = conv_bn_pairs(module, example)
    for conv_name, bn_name in pairs:
        conv, bn = module.get_submodule(conv_name), module.get_submodule(bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        parent, _, attr = bn_name.rpartition(".")
        setattr(module.get_submodule(parent), attr, _bn_replacement(bn))
    return len(pairs)


def inference_copy(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """Folded, channels_last, gradient-free copy of `module` (in eval mode), checked on `example`."""
    fast = copy.deepcopy(module).eval().requires_grad_(False)
    fold_batchnorm(fast, example)
    fast = fast.to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = module(example)
        out = fast(example.contiguous(memory_format=torch.channels_last))
    err = (out - ref).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    if not err <= CHECK_RTOL * scale:
        raise FoldMismatch(f"the folded copy of {type(module).__name__} differs from it by {err:.3g} "
                           f"(output scale {scale:.3g})")
    return fast
