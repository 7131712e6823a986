from tred.models.backbones import Backbone, build_backbone
from tred.models.hooks import FeatureTaps, resolve_layers
from tred.models.network import TransferNet, build_models

__all__ = ["Backbone", "build_backbone", "FeatureTaps", "resolve_layers", "TransferNet", "build_models"]
