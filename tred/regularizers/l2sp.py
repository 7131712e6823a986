"""L2-SP: pull the backbone toward its starting point (Li, Grandvalet, Davoine, ICML 2018)."""

from dataclasses import dataclass

from torch import nn

from tred.regularizers.base import Regularizer
from tred.regularizers.functional import head_l2_penalty, l2sp_penalty
from tred.regularizers.registry import register

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def sp_parameters(backbone: nn.Module, exclude_norm_and_bias: bool) -> list[str]:
    """Names of the backbone parameters in the SP term (all, or conv/linear weights only)."""
    names = []
    for mname, module in backbone.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if exclude_norm_and_bias and (isinstance(module, NORM_LAYERS) or pname == "bias"):
                continue
            names.append(f"{mname}.{pname}" if mname else pname)
    return names


@register("l2sp")
class L2SP(Regularizer):
    """alpha/2 * sum_backbone ||w - w0||^2 + beta/2 * ||w_head||^2 (no weight decay).

    Terms: `l2sp_sp` (starting-point distance), `l2sp_head` (new head's weight).
    """

    weight_key = "alpha"  # the main weight: what `weight_scale` scales and tuning sweeps

    @dataclass
    class Config:
        # alpha 0.1, beta 0.01: the L2-SP paper's values (later work of the same lab: 1e-3 / 1e-4).
        alpha: float = 0.1
        beta: float = 0.01
        # false: every backbone parameter (as the DELTA authors' L2-SP code); true: conv/linear weights only.
        exclude_norm_and_bias: bool = False

    def __init__(self, cfg):
        super().__init__(cfg)
        self.params, self.refs = [], []

    def setup(self, ctx) -> dict:
        names = sp_parameters(ctx.model.backbone, self.cfg.exclude_norm_and_bias)
        own, ref = dict(ctx.model.backbone.named_parameters()), dict(ctx.source.named_parameters())
        self.params = [own[n] for n in names]
        self.refs = [ref[n].detach() for n in names]  # the frozen source's tensors: no copy
        return {"l2sp_num_params": sum(p.numel() for p in self.params)}

    def penalty(self, step) -> dict:
        return {"l2sp_sp": self.cfg.alpha * l2sp_penalty(self.params, self.refs),
                "l2sp_head": self.cfg.beta * head_l2_penalty(step.model.head)}
