"""Plain fine-tuning ("L2"): no penalty term, weight decay in the optimizer."""

from dataclasses import dataclass

from tred.regularizers.base import Regularizer
from tred.regularizers.registry import register


@register("l2")
class L2(Regularizer):
    """loss = CE; the optimizer applies weight decay `weight_decay` to every parameter."""

    weight_key = "weight_decay"  # the main weight: what `weight_scale` scales and tuning sweeps

    @dataclass
    class Config:
        # Weight decay in the optimizer (the "L2" / fine-tuning baseline).
        weight_decay: float = 1e-4

    def __init__(self, cfg):
        super().__init__(cfg)
        self.weight_decay = cfg.weight_decay
