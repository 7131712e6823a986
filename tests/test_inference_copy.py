"""The BatchNorm-folded channels_last inference copy: same outputs, every foldable pair folded."""

import pytest
import torch
from torch import nn

from tests.nets import lite0, randomize_bn, small_resnet, source_of
from tred.models.inference import FoldMismatch, conv_bn_pairs, inference_copy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("make", [lite0, small_resnet])
def test_every_batchnorm_is_folded_and_outputs_agree(make):
    source = source_of(make())
    x = torch.rand(2, 3, 32, 32)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in source.modules())
    assert len(conv_bn_pairs(source, x)) == n_bn
    fast = inference_copy(source, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in source.modules()) == n_bn  # source untouched
    with torch.no_grad():
        x2 = torch.rand(3, 3, 32, 32)
        torch.testing.assert_close(fast(x2.contiguous(memory_format=torch.channels_last)), source(x2),
                                   rtol=1e-4, atol=1e-5)


class ConvOutputUsedTwice(nn.Module):
    """conv -> bn, and the conv output is also added to the result: folding it would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        h = self.conv(x)
        return self.bn(h) + h


def test_a_wrong_fold_is_refused():
    torch.manual_seed(0)
    m = ConvOutputUsedTwice()
    randomize_bn(m)
    m.eval()
    with pytest.raises(FoldMismatch, match="differs"):
        inference_copy(m, torch.rand(2, 3, 8, 8))
