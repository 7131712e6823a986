"""What a regularizer is: its config, what it needs from a training step, and its penalty terms.

A regularizer knows its formula and nothing about datasets, loggers or Hydra. It declares what
it needs and the engine computes exactly that, once per step:

- `source_layers`: feature maps of the frozen source model w0 (one shared forward, no autograd);
- `target_layers`: feature maps of the network being trained;
- `needs_features`: the pooled penultimate feature f(x) of the network being trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch


@dataclass
class Step:
    """What the engine hands to `Regularizer.penalty` for one batch."""

    model: Any
    logits: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor
    target_maps: dict = field(default_factory=dict)
    source_maps: dict = field(default_factory=dict)


@dataclass
class SetupContext:
    """What a regularizer may use once before training (stage 1, references to w0 ...)."""

    model: Any
    source: Any
    data: Any
    cfg: Any              # the whole validated run config
    device: torch.device
    run_dir: Any
    cache_dir: Any
    metrics: Any          # tred.engine.metrics.MetricsLog


class Regularizer:
    name: ClassVar[str] = ""
    # The Config field holding the method's main weight (alpha, eta, weight_decay ...): the one
    # a tuning sweep turns (`weight_scale`) and a table's caption reports.
    weight_key: ClassVar[str | None] = None

    @dataclass
    class Config:
        pass

    source_layers: tuple = ()
    target_layers: tuple = ()
    needs_features: bool = False
    # Weight decay this method asks the optimizer for (trainer.weight_decay overrides it).
    weight_decay: float = 0.0

    def __init__(self, cfg, backbone_cfg=None):
        self.cfg = cfg

    def setup(self, ctx: SetupContext) -> dict:
        """Work done once before fine-tuning; returns diagnostics for result.json."""
        return {}

    def penalty(self, step: Step) -> dict[str, torch.Tensor]:
        """Loss terms of this batch, by name (each is logged separately)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
