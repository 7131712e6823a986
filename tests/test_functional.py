"""Each functional penalty against values worked out independently (by hand, loops, numpy)."""

import math

import numpy as np
import pytest
import torch

from tred.regularizers.functional import at_penalty, bss_penalty, delta_penalty, head_l2_penalty, l2sp_penalty


def test_l2sp_by_hand_and_gradient():
    w = [torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)]
    w0 = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    val = l2sp_penalty(w, w0)
    assert val.item() == pytest.approx(0.5 * (1 + 4 + 4))
    val.backward()
    assert w[0].grad.tolist() == [1.0, 2.0] and w[1].grad.tolist() == [[2.0]]


def test_l2sp_zero_at_start_with_zero_gradient():
    w = [torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    val = l2sp_penalty(w, [p.detach().clone() for p in w])
    val.backward()
    assert val.item() == 0.0
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in w)


def test_l2sp_gradcheck():
    w = (torch.randn(3, 2, dtype=torch.float64, requires_grad=True),
         torch.randn(4, dtype=torch.float64, requires_grad=True))
    w0 = [torch.randn(3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda a, b: l2sp_penalty([a, b], w0), w)


def _at_loop(fm_t, fm_s, p):
    b, c, h, w = fm_t.shape
    total = 0.0
    for i in range(b):
        maps = []
        for fm in (fm_t, fm_s):
            a = [sum(float(fm[i, k, y, x]) ** p for k in range(c)) / c for y in range(h) for x in range(w)]
            norm = math.sqrt(sum(v * v for v in a))
            maps.append([v / norm for v in a])
        total += sum((u - v) ** 2 for u, v in zip(*maps))
    return total / (b * h * w)


@pytest.mark.parametrize("p", [2, 3])
def test_at_against_loop(p):
    torch.manual_seed(0)
    fm_t, fm_s = torch.rand(2, 3, 2, 3, dtype=torch.float64), torch.rand(2, 3, 2, 3, dtype=torch.float64)
    assert at_penalty(fm_t, fm_s, p).item() == pytest.approx(_at_loop(fm_t, fm_s, p), rel=1e-12)


def test_at_scale_invariant_and_gradcheck():
    torch.manual_seed(1)
    fm_t, fm_s = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    base = at_penalty(fm_t, fm_s)
    assert at_penalty(7.5 * fm_t, fm_s).item() == pytest.approx(base.item(), rel=1e-5)
    assert at_penalty(fm_t, 0.01 * fm_s).item() == pytest.approx(base.item(), rel=1e-5)
    x = fm_t.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: at_penalty(t, fm_s.double()), (x,))


def _delta_loop(fm_t, fm_s, weights):
    b, c, h, w = fm_t.shape
    total = 0.0
    for i in range(b):
        for k in range(c):
            sq = sum((float(fm_t[i, k, y, x]) - float(fm_s[i, k, y, x])) ** 2 for y in range(h) for x in range(w))
            total += c * float(weights[k]) * sq / (h * w)
    return 0.5 * total


def test_delta_weighted_against_loop_and_source_constant():
    torch.manual_seed(2)
    fm_t = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    fm_s = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    wts = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    val = delta_penalty(fm_t, fm_s, wts)
    assert val.item() == pytest.approx(_delta_loop(fm_t.detach(), fm_s.detach(), wts), rel=1e-12)
    val.backward()
    assert fm_s.grad is None and fm_t.grad is not None
    assert torch.autograd.gradcheck(lambda t: delta_penalty(t, fm_s.detach(), wts), (fm_t.detach().requires_grad_(),))


def test_delta_uniform_is_plain_distance():
    torch.manual_seed(3)
    fm_t, fm_s = torch.randn(4, 5, 3, 2, dtype=torch.float64), torch.randn(4, 5, 3, 2, dtype=torch.float64)
    plain = 0.5 * ((fm_t - fm_s) ** 2).sum().item() / (3 * 2)  # documented: 0.5 sum (diff)^2 / (H*W)
    assert delta_penalty(fm_t, fm_s).item() == pytest.approx(plain, rel=1e-12)
    weighted = delta_penalty(fm_t, fm_s, torch.full((5,), 0.2, dtype=torch.float64)).item()
    assert weighted == pytest.approx(plain, rel=1e-12)


@pytest.mark.parametrize("shape", [(7, 4), (3, 6)])
@pytest.mark.parametrize("k", [1, 2])
def test_bss_against_eigenvalues(shape, k):
    rng = np.random.default_rng(4)
    f = rng.standard_normal(shape)
    gram = f.T @ f if shape[0] > shape[1] else f @ f.T  # min(B, D) x min(B, D): eigenvalues = sigma^2
    expected = np.sort(np.linalg.eigvalsh(gram))[:k].sum()
    assert bss_penalty(torch.from_numpy(f), k).item() == pytest.approx(expected, rel=1e-9)
    x = torch.from_numpy(f).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: bss_penalty(t, k), (x,))


def test_bss_rejects_too_large_k():
    with pytest.raises(ValueError, match="singular values"):
        bss_penalty(torch.randn(3, 5), k=4)


def test_head_l2_by_hand():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
        head.bias.fill_(10.0)
    assert head_l2_penalty(head).item() == pytest.approx(0.5 * 14)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_bss_of_non_finite_features_is_nan_not_a_linalg_error(bad):
    """LAPACK's SVD raises on NaN input; the penalty returns NaN so that the training loop's
    non-finite-loss check names the iteration and the term, as for every other term."""
    f = torch.randn(6, 10, requires_grad=True)
    bad_f = f.detach().clone()
    bad_f[2, 3] = bad
    assert torch.isnan(bss_penalty(bad_f, 2))
    value = bss_penalty(f, 2)  # finite features: unchanged, gradient flows
    value.backward()
    assert torch.isfinite(value) and f.grad is not None and torch.isfinite(f.grad).all()
