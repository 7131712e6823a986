"""DELTA channel attention: fast estimator == naive full-forward reference; network suffixes."""

import pytest
import timm
import torch
from torch import nn

import tred.stage1.channel_attention as ca
from tests.nets import small_resnet, source_of
from tred.errors import ConfigError
from tred.models.backbones import Backbone
from tred.models.hooks import FeatureTaps
from tred.models.inference import inference_copy
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


@pytest.mark.parametrize("optimized", [True, False])
def test_fast_scores_equal_naive(source, monkeypatch, optimized):
    monkeypatch.setattr(ca, "CHUNK_ELEMS", 20000)  # several stacked chunks per layer
    torch.manual_seed(1)
    head = nn.Linear(source.num_features, 3).eval()
    batches = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    # blocks.1 is read by a 1x1 convolution only (replaced by outer products when optimized);
    # blocks.3.1 also feeds the residual of blocks.3.2.
    layers = ["blocks.1", "blocks.3.1"]
    fast = ca.channel_scores(source, head, batches, layers, optimized=optimized)
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


def test_fast_scores_equal_naive_on_the_last_stage(source):
    """blocks.6 feeds conv_head directly: its suffix is one outer product, BN and pooling."""
    torch.manual_seed(2)
    head = nn.Linear(source.num_features, 3).eval()
    batches = [(torch.rand(2, 3, 32, 32), torch.tensor([2, 1]))]
    fast = ca.channel_scores(source, head, batches, ["blocks.6"])["blocks.6"]
    naive = ca.channel_scores_naive(source, head, batches, ["blocks.6"])["blocks.6"]
    torch.testing.assert_close(fast, naive, rtol=1e-4, atol=1e-5)
    assert fast.abs().max() > 0


def test_optimized_scorer_uses_outer_products_where_it_can(source):
    """The convolutions reading each layer's map directly are found (so the fast path is taken)."""
    x = torch.rand(2, 3, 32, 32)
    body = inference_copy(source, x).body
    taps = FeatureTaps(source.body, ["blocks.1", "blocks.3.1", "blocks.6"])
    with torch.no_grad():
        source(x)
    maps = taps.pop()
    taps.close()
    head = nn.Linear(source.num_features, 3).eval()
    y = torch.tensor([0, 1])
    expected = {"blocks.1": ["blocks.2.0.conv_pw"], "blocks.3.1": ["blocks.3.2.conv_pw"], "blocks.6": ["conv_head"]}
    for j, readers in expected.items():
        scorer = ca._LayerScorer(body, j, optimized=True)
        with torch.no_grad():
            scorer(head, maps[j], y)
        assert scorer.readers == readers


@pytest.mark.parametrize("stride", [1, 2])
def test_zeroed_input_conv_equals_the_convolution(stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 1, stride=stride).eval().to(memory_format=torch.channels_last)
    fm = torch.randn(3, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    channels = torch.tensor([4, 0, 2])
    z = fm.unsqueeze(0).repeat(3, 1, 1, 1, 1)
    z[torch.arange(3), :, channels] = 0
    with torch.no_grad():
        ref = conv(z.flatten(0, 1))
        stand_in = ca._ZeroedInputConv(conv, fm)
        stand_in.channels = channels
        out = stand_in(z.flatten(0, 1))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_fast_scores_equal_naive_on_a_resnet(monkeypatch):
    """Bottleneck blocks: the next stage's conv1 and its strided 1x1 downsample read the map."""
    monkeypatch.setattr(ca, "CHUNK_ELEMS", 2000)
    source = source_of(small_resnet())
    torch.manual_seed(0)
    head = nn.Linear(source.num_features, 3).eval()
    batches = [(torch.rand(3, 3, 32, 32), torch.tensor([0, 1, 2]))]
    fast = ca.channel_scores(source, head, batches, ["layer1", "layer2.0"])
    naive = ca.channel_scores_naive(source, head, batches, ["layer1", "layer2.0"])
    for j in fast:
        torch.testing.assert_close(fast[j], naive[j], rtol=1e-4, atol=1e-5)
        assert fast[j].abs().max() > 0


def test_a_refused_fold_falls_back_to_the_plain_network(source, monkeypatch, caplog):
    def refuse(*_a, **_k):
        raise ca.FoldMismatch("the folded copy differs")

    monkeypatch.setattr(ca, "inference_copy", refuse)
    torch.manual_seed(3)
    head = nn.Linear(source.num_features, 3).eval()
    batches = [(torch.rand(2, 3, 32, 32), torch.tensor([0, 2]))]
    out = ca.channel_scores(source, head, batches, ["blocks.2"])
    plain = ca.channel_scores(source, head, batches, ["blocks.2"], optimized=False)
    assert torch.equal(out["blocks.2"], plain["blocks.2"])
    assert "unmodified source" in caplog.text
