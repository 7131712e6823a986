"""Batch spectral shrinkage (Chen, Wang, Fu, Long, Wang, NeurIPS 2019)."""

from dataclasses import dataclass

from tred.errors import ConfigError
from tred.regularizers.base import Regularizer
from tred.regularizers.functional import bss_penalty
from tred.regularizers.registry import register


@register("bss")
class BSS(Regularizer):
    """eta * sum_{i<=k} sigma_{-i}(F)^2 over the pooled B x D features F. Term: `bss`."""

    weight_key = "eta"  # the main weight: what `weight_scale` scales and tuning sweeps

    @dataclass
    class Config:
        # eta 1e-3, k 1: the BSS paper's defaults.
        eta: float = 1e-3
        k: int = 1

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.k < 1:
            raise ConfigError(f"regularizer.bss.k must be >= 1, got {cfg.k}")

    def penalty(self, step) -> dict:
        return {"bss": self.cfg.eta * bss_penalty(step.features, self.cfg.k)}
