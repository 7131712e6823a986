"""The disentangler of one TRED layer: z -> (z_r, z_i), plus the target head on pooled z_r.

`parts` (config `disentangle.parts`):
- `branches` (the default, docs/tred.md): z_r = E_r(z), z_i = E_i(z), two free branches; the stage-1 loss asks
  for z_r + z_i = z only through the reconstruction term.
- `mask`: z_r = sigmoid(E_r(z)) * z, z_i = z - z_r (elementwise). The two parts split z by
  construction (reconstruction exact, every element of z_r between 0 and that of z), so the
  reference stays within the source map: mean (z_r - z)^2 <= mean z^2.
- `projection`: z_r = P z at every position, z_i = z - z_r, with P the orthogonal projection of
  the channel space onto the span of the target classes' mean pooled source features (minus
  their overall mean), rank <= classes - 1, fitted once on the training maps
  (`class_mean_basis`); nothing else is trained but h_r. The class means of pool(z_i) are then
  equal on the training data, so z_i holds no target information in its class means, and the
  reference is an orthogonal part of z (gap = the energy outside the span, <= 1).
"""

from __future__ import annotations

import torch
from torch import nn


def branch(channels: int) -> nn.Sequential:
    """1x1 conv, BN, ReLU, 1x1 conv; C -> C (docs/tred.md, "The recipe as implemented")."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1))


PARTS = ("branches", "mask", "projection")


def class_mean_basis(pooled: torch.Tensor, labels: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
    """Orthonormal rows spanning {mean(pooled[labels == k]) - mean over the class means}: r x C."""
    means = torch.stack([pooled[labels == k].mean(0) for k in labels.unique()]).double()
    centred = means - means.mean(0)
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    keep = s > rtol * s.max().clamp_min(1e-30)
    return vt[keep].to(pooled.dtype)


class LayerDisentangler(nn.Module):
    """E_r (relevant part), E_i (irrelevant part; none for `mask`) and the linear head h_r on pool(z_r)."""

    def __init__(self, channels: int, num_classes: int, parts: str = "branches"):
        super().__init__()
        if parts not in PARTS:
            raise ValueError(f"parts={parts!r}; valid: {list(PARTS)}")
        self.parts = parts
        self.relevant = branch(channels) if parts != "projection" else None
        self.irrelevant = branch(channels) if parts == "branches" else None
        if parts == "projection":  # r x C, set by set_basis (r <= classes - 1)
            self.register_buffer("basis", torch.zeros(0, channels))
        self.head = nn.Linear(channels, num_classes)

    def set_basis(self, basis: torch.Tensor) -> None:
        self.basis = basis.to(self.head.weight)

    def relevant_part(self, z: torch.Tensor) -> torch.Tensor:
        """z_r, the reference of stage 2."""
        if self.parts == "projection":
            coords = torch.einsum("rc,bchw->brhw", self.basis, z)
            return torch.einsum("rc,brhw->bchw", self.basis, coords)
        return self.relevant(z) if self.parts == "branches" else torch.sigmoid(self.relevant(z)) * z

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_r = self.relevant_part(z)
        return z_r, (self.irrelevant(z) if self.parts == "branches" else z - z_r)


def module_key(layer: str) -> str:
    return layer.replace(".", "__")  # ModuleDict keys may not contain dots


class Disentangler(nn.Module):
    """One `LayerDisentangler` per TRED layer, addressed by the layer's name."""

    def __init__(self, channels: dict[str, int], num_classes: int, parts: str = "branches"):
        super().__init__()
        self.channels = dict(channels)
        self.num_classes = num_classes
        self.parts = parts
        self.layers = nn.ModuleDict({module_key(n): LayerDisentangler(c, num_classes, parts)
                                     for n, c in channels.items()})

    def __getitem__(self, layer: str) -> LayerDisentangler:
        return self.layers[module_key(layer)]

    def names(self) -> list[str]:
        return list(self.channels)

    def export(self) -> dict:
        """What the cache and the run directory store: enough to rebuild it."""
        return {"channels": self.channels, "num_classes": self.num_classes, "parts": self.parts,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_export(cls, saved: dict) -> Disentangler:
        model = cls(saved["channels"], saved["num_classes"], saved.get("parts", "branches"))
        for name in model.channels:  # the projection's rank is known only from what was saved
            key = f"layers.{module_key(name)}.basis"
            if key in saved["state_dict"]:
                model[name].basis = torch.empty_like(saved["state_dict"][key])
        model.load_state_dict(saved["state_dict"])
        return model
