"""DELTA: feature-map distance to the source, weighted by channel attention (Li et al., ICLR 2019)."""

from dataclasses import dataclass, field

from tred.errors import ConfigError
from tred.regularizers.base import Regularizer
from tred.regularizers.functional import delta_penalty, head_l2_penalty
from tred.regularizers.registry import register


@register("delta")
class Delta(Regularizer):
    """alpha * sum_j 0.5 * sum_{b,c} C_j W_jc ||FM_jc(w) - FM_jc(w0)||^2 / (H_j W_j) + beta/2 ||w_head||^2.

    W_j is DELTA's channel attention (tred/stage1/channel_attention.py), or uniform 1/C_j when
    `channel_attention` is false. Terms: `delta_fm`, `delta_head`.
    """

    weight_key = "alpha"  # the main weight: what `weight_scale` scales and tuning sweeps

    @dataclass
    class Config:
        # alpha 0.01 (0.1 on Stanford Dogs), beta 0.01: the DELTA paper's code.
        alpha: float = 0.01
        beta: float = 0.01
        # configs/regularizer/delta.yaml: ${backbone.feature_layers}
        layers: list = field(default_factory=list)
        # false: uniform weights 1/C (the plain feature-map distance, "DELTA w/o attention").
        channel_attention: bool = True
        # Head-only training epochs on the frozen source, and training batches averaged per score.
        attention_epochs: int = 10
        attention_batches: int = 10
        # softmax(z-score / 5): DELTA's temperature.
        attention_temperature: float = 5.0

    def __init__(self, cfg):
        super().__init__(cfg)
        if not cfg.layers:
            raise ConfigError("regularizer.delta.layers is empty; list the layers to match, e.g. blocks.4")
        if cfg.channel_attention and (cfg.attention_epochs < 0 or cfg.attention_batches < 1):
            raise ConfigError("regularizer.delta needs attention_epochs >= 0 and attention_batches >= 1")
        self.source_layers = self.target_layers = tuple(cfg.layers)
        self.weights: dict = {}

    def setup(self, ctx) -> dict:
        if not self.cfg.channel_attention:
            return {}
        att = ctx.channel_attention(self.target_layers, self.cfg.attention_epochs,
                                    self.cfg.attention_batches, self.cfg.attention_temperature)
        self.weights = att.weights
        return {"delta_attention_time_s": att.time_s, "delta_attention_cache_hit": att.cache_hit}

    def penalty(self, step) -> dict:
        fm = sum(delta_penalty(step.target_maps[j], step.source_maps[j], self.weights.get(j))
                 for j in self.target_layers)
        return {"delta_fm": self.cfg.alpha * fm, "delta_head": self.cfg.beta * head_l2_penalty(step.model.head)}
