"""What a regularizer is: its config, what it needs from a training step, and its penalty terms.

A regularizer knows its formula and nothing about datasets, loggers or Hydra. It declares what
it needs and the engine computes exactly that, once per step:

- `source_layers`: feature maps of the frozen source model w0 (one shared forward, no autograd);
- `target_layers`: feature maps of the network being trained;
- the pooled penultimate feature f(x) of the network being trained is always there (`Step.features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from tred.stage1.channel_attention import Attention, channel_attention


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
    """What a regularizer may use once before training (stage 1, references to w0 ...).

    Not the run config: what the run's stage-1 procedures (tred/stage1) take as arguments.
    """

    model: Any
    source: Any
    data: Any
    device: torch.device
    run_dir: Any
    cache_dir: Any
    metrics: Any          # tred.engine.metrics.MetricsLog
    seed: int = 0
    # Which source network and which data these are (the run's backbone and dataset settings,
    # plain dicts): part of every stage cache's key.
    identity: dict = field(default_factory=dict)
    # The fine-tuning settings (batch_size, lr, momentum, head_lr_mult, eval_batch_size) that a
    # stage-1 head training borrows.
    trainer: Any = None
    # TRED's stage-1 settings (the `disentangle` group); None when the run does not select tred.
    disentangle: Any = None

    def channel_attention(self, layers, epochs: int, batches: int, temperature: float) -> Attention:
        """DELTA's channel weights of `layers` for this run, on `device`, with their compute time
        and cache hit (tred/stage1/channel_attention.py)."""
        t = self.trainer
        att = channel_attention(
            self.source, self.data, layers, epochs=epochs, batches=batches, temperature=temperature,
            batch_size=t.batch_size, lr=t.lr * t.head_lr_mult, momentum=t.momentum,
            eval_batch_size=t.eval_batch_size, seed=self.seed, device=self.device,
            cache_dir=self.cache_dir, identity=self.identity)
        return att._replace(weights={j: w.to(self.device) for j, w in att.weights.items()})


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
    # Weight decay this method asks the optimizer for (trainer.weight_decay overrides it).
    weight_decay: float = 0.0

    def __init__(self, cfg):
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
