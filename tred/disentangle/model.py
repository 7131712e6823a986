"""The disentangler of one TRED layer: z -> (z_r, z_i), plus the target head on pooled z_r."""

from __future__ import annotations

import torch
from torch import nn


def branch(channels: int) -> nn.Sequential:
    """1x1 conv, BN, ReLU, 1x1 conv; C -> C (DESIGN.md, "TRED as this project implements it")."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1))


class LayerDisentangler(nn.Module):
    """E_r (relevant part), E_i (irrelevant part) and the linear head h_r on pool(z_r)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.relevant = branch(channels)
        self.irrelevant = branch(channels)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.relevant(z), self.irrelevant(z)


def module_key(layer: str) -> str:
    return layer.replace(".", "__")  # ModuleDict keys may not contain dots


class Disentangler(nn.Module):
    """One `LayerDisentangler` per TRED layer, addressed by the layer's name."""

    def __init__(self, channels: dict[str, int], num_classes: int):
        super().__init__()
        self.channels = dict(channels)
        self.num_classes = num_classes
        self.layers = nn.ModuleDict({module_key(n): LayerDisentangler(c, num_classes) for n, c in channels.items()})

    def __getitem__(self, layer: str) -> LayerDisentangler:
        return self.layers[module_key(layer)]

    def names(self) -> list[str]:
        return list(self.channels)

    def export(self) -> dict:
        """What the cache and the run directory store: enough to rebuild it."""
        return {"channels": self.channels, "num_classes": self.num_classes,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_export(cls, saved: dict) -> "Disentangler":
        model = cls(saved["channels"], saved["num_classes"])
        model.load_state_dict(saved["state_dict"])
        return model
