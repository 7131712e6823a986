"""Small randomly initialised timm networks with non-trivial BatchNorm statistics, for tests."""

import timm
import torch
from timm.models.resnet import Bottleneck, ResNet
from torch import nn

from tred.models.backbones import Backbone
from tred.models.network import frozen_copy


def randomize_bn(module: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from (0, 1), so that folding them matters."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module


def source_of(body: nn.Module) -> nn.Module:
    return frozen_copy(Backbone(randomize_bn(body), [0.5] * 3, [0.5] * 3))


def small_resnet(seed: int = 0) -> nn.Module:
    """A narrow Bottleneck ResNet body (stage outputs 64, 128, 256, 512 channels)."""
    torch.manual_seed(seed)
    return ResNet(Bottleneck, (2, 2, 1, 1), num_classes=0, stem_width=16, channels=(16, 32, 64, 128))


def lite0(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
