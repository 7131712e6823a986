"""The fine-tuned network (backbone + new head) and the frozen source it starts from."""

from __future__ import annotations

import copy

import torch
from torch import nn

from tred.models.backbones import Backbone, build_backbone


class TransferNet(nn.Module):
    """Backbone with a new linear head; forward returns (logits, pooled features)."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        return self.head(feats), feats


def frozen_copy(backbone: nn.Module) -> nn.Module:
    """The source model w0: a copy (of a Backbone, or any network: tred.library) in eval mode with no gradients."""
    source = copy.deepcopy(backbone).eval()
    for p in source.parameters():
        p.requires_grad_(False)
    return source


def build_models(cfg_backbone, num_classes: int, seed: int) -> tuple[TransferNet, Backbone]:
    """(target network, frozen source backbone); the head init is seeded by `seed`."""
    backbone = build_backbone(cfg_backbone)
    torch.manual_seed(seed)
    model = TransferNet(backbone, num_classes)
    return model, frozen_copy(backbone)
