"""DELTA channel attention: fast estimator == naive full-forward reference; network suffixes."""

import pytest
import timm
import torch
from torch import nn

import tred.regularizers.channel_attention as ca
from tred.errors import ConfigError
from tred.models.backbones import Backbone
from tred.models.hooks import FeatureTaps
from tred.models.network import frozen_copy
from tred.models.suffix import network_suffix


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    body = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    return frozen_copy(Backbone(body, [0.5] * 3, [0.5] * 3))


@pytest.mark.parametrize("layer", ["bn1", "blocks.1", "blocks.3.1", "blocks.6", "bn2"])
def test_suffix_reproduces_the_network(source, layer):
    x = torch.rand(2, 3, 32, 32)
    taps = FeatureTaps(source.body, [layer])
    with torch.no_grad():
        ref = source(x)
        fm = taps.pop()[layer]
        out = network_suffix(source.body, layer)(fm)
    taps.close()
    assert torch.equal(out, ref)


@pytest.mark.parametrize("layer", ["blocks.1.0.conv_pw", "global_pool", "blocks.9"])
def test_suffix_unsupported_layer_fails_clearly(source, layer):
    with pytest.raises(ConfigError, match="cannot recompute"):
        network_suffix(source.body, layer)


def test_fast_scores_equal_naive(source, monkeypatch):
    monkeypatch.setattr(ca, "CHUNK_ELEMS", 20000)  # several stacked chunks per layer
    torch.manual_seed(1)
    head = nn.Linear(source.num_features, 3).eval()
    batches = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    layers = ["blocks.1", "blocks.3.1"]
    fast = ca.channel_scores(source, head, batches, layers)
    naive = ca.channel_scores_naive(source, head, batches, layers)
    for j in layers:
        assert fast[j].shape == naive[j].shape == ({"blocks.1": 24, "blocks.3.1": 80}[j],)
        torch.testing.assert_close(fast[j], naive[j], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ca.attention_weights(fast[j], 5.0), ca.attention_weights(naive[j], 5.0))
        assert fast[j].abs().max() > 0  # zeroing channels changes the loss at all


def test_attention_weights_by_hand():
    w = ca.attention_weights(torch.tensor([1.0, 2.0, 3.0]), 5.0)  # z-scores (unbiased std) -1, 0, 1
    e = torch.exp(torch.tensor([-0.2, 0.0, 0.2]))
    torch.testing.assert_close(w, e / e.sum())
    torch.testing.assert_close(ca.attention_weights(torch.full((4,), 0.7), 5.0), torch.full((4,), 0.25))
