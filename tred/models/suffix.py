"""The rest of a timm network after a named layer, so that only that part is recomputed.

`network_suffix(body, layer)` returns `f` with `f(FM_layer(x)) == body.forward_head(...,
pre_logits=True)`, the pooled feature (`body(x)` itself for the pipeline's bodies, built with
`num_classes=0`; a timm model that keeps its classifier works too). It works for layers inside
the known top-level sequence of a timm EfficientNet or ResNet body, down through nested
`nn.Sequential` containers (`blocks.3`, `blocks.3.1`, `layer2`, `layer2.0`); anything else raises
a `ConfigError` listing what is supported (`has_suffix` asks without raising).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tred.errors import ConfigError

# The modules `forward_features` calls, in order (timm's efficientnet.py and resnet.py).
TOP_LEVEL = {
    "EfficientNet": ("conv_stem", "bn1", "blocks", "conv_head", "bn2"),
    "ResNet": ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"),
}


def _stages(body: nn.Module, layer: str) -> tuple[str, ...]:
    stages = TOP_LEVEL.get(type(body).__name__)
    # timm's classes only: torchvision's ResNet has the same name but other module names.
    if stages is None or not type(body).__module__.startswith("timm."):
        raise ConfigError(f"recomputing the network after `{layer}` is supported for timm "
                          f"{sorted(TOP_LEVEL)} bodies, not {type(body).__name__}")
    if getattr(body, "grad_checkpointing", False):
        raise ConfigError("recomputing a network suffix needs grad checkpointing off")
    return stages


def suffix_modules(body: nn.Module, layer: str) -> list[nn.Module]:
    """The modules run after `layer`, in order (the pooling head is not included)."""
    stages = _stages(body, layer)
    parts = layer.split(".")
    if parts[0] not in stages:
        raise ConfigError(f"cannot recompute {type(body).__name__} after `{layer}`: the layer must be "
                          f"one of {list(stages)} or a numbered child inside one (e.g. `{stages[-1]}.0`)")
    after: list[nn.Module] = []
    container: nn.Module = getattr(body, parts[0])
    for depth, part in enumerate(parts[1:], start=1):
        if not isinstance(container, nn.Sequential) or not part.isdigit() or int(part) >= len(container):
            raise ConfigError(f"cannot recompute {type(body).__name__} after `{layer}`: "
                              f"`{'.'.join(parts[:depth])}` has no sequential child `{part}`")
        idx = int(part)
        after = list(container[idx + 1:]) + after  # inner siblings run before the outer ones
        container = container[idx]
    top = stages.index(parts[0])
    return after + [getattr(body, name) for name in stages[top + 1:]]


def network_suffix(body: nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """`f(fm) = pooled feature of body` when `fm` is the output of `layer` (see module doc)."""
    modules = suffix_modules(body, layer)

    def suffix(fm: torch.Tensor) -> torch.Tensor:
        for m in modules:
            fm = m(fm)
        return body.forward_head(fm, pre_logits=True)  # the pooled feature, not the classifier's logits

    return suffix


def has_suffix(body: nn.Module, layer: str) -> bool:
    """Whether `network_suffix(body, layer)` exists (a timm EfficientNet or ResNet, a layer it supports)."""
    try:
        suffix_modules(body, layer)
    except ConfigError:
        return False
    return True
