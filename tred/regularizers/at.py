"""Attention transfer from the frozen source (Zagoruyko & Komodakis, ICLR 2017)."""

from dataclasses import dataclass, field

from tred.errors import ConfigError
from tred.regularizers.base import Regularizer
from tred.regularizers.functional import at_penalty
from tred.regularizers.registry import register


@register("at")
class AT(Regularizer):
    """beta * sum_j mean_{b,hw} (a(FM_j(w)) - a(FM_j(w0)))^2, a = L2-normalize_hw(mean_c FM^p).

    Term: `at`.
    """

    weight_key = "beta"  # the main weight: what `weight_scale` scales and tuning sweeps

    @dataclass
    class Config:
        # beta 1e3 and p 2: the AT paper's code (as used as a baseline by DELTA, ICLR 2019).
        beta: float = 1000.0
        p: float = 2.0
        # configs/regularizer/at.yaml: ${backbone.feature_layers}
        layers: list = field(default_factory=list)

    def __init__(self, cfg):
        super().__init__(cfg)
        if not cfg.layers:
            raise ConfigError("regularizer.at.layers is empty; list the layers to match, e.g. blocks.4")
        self.source_layers = self.target_layers = tuple(cfg.layers)

    def penalty(self, step) -> dict:
        total = sum(at_penalty(step.target_maps[j], step.source_maps[j], self.cfg.p) for j in self.target_layers)
        return {"at": self.cfg.beta * total}
