"""TRED: stage 1 on a synthetic problem with known relevant channels, the stage-2 penalty, smoke runs."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import compose_cfg
from tred.config import validate
from tred.errors import ConfigError
from tred.regularizers import REGISTRY, build_regularizers
from tred.regularizers.base import Step
from tred.schema import DisentangleConfig
from tred.stage1.disentangle import evaluate_stage1, train_disentangler
from tred.stage1.disentangler import Disentangler
from tred.stage1.estimators import mmd2


class IdentitySource(nn.Module):
    """A 'source model' whose hooked layer `feat` outputs its input: the data are the feature maps."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("feat", nn.Identity())

    def forward(self, x):
        return self.body(x)


class ChannelData:
    """z: N x 8 x 2 x 2 Gaussian noise; the label (2 classes) shifts channels 0 and 1 only."""

    num_classes = 2

    def __init__(self, n=128, channels=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, channels, 2, 2, generator=g)
        self.x[:, :2] += 1.5 * (2.0 * self.y - 1.0).view(-1, 1, 1, 1)

    def eval_batches(self, split, batch_size):
        for i in range(0, len(self.y), batch_size):
            yield self.x[i:i + batch_size], self.y[i:i + batch_size]


def gaussian_mi(a: torch.Tensor, b: torch.Tensor, ridge: float = 1e-3) -> float:
    """I(a; b) of the Gaussian with the samples' covariance: 0.5 log(det S_aa det S_bb / det S)."""
    j = torch.cat([a, b], 1).double()
    j = j - j.mean(0)
    cov = j.T @ j / len(j) + ridge * torch.eye(j.shape[1], dtype=torch.float64)
    d = a.shape[1]
    return 0.5 * float(torch.logdet(cov[:d, :d]) + torch.logdet(cov[d:, d:]) - torch.logdet(cov))


def pooled_parts(model, z):
    with torch.no_grad():
        zr, zi = model["feat"](z)
    return zr.mean((2, 3)), zi.mean((2, 3))


def stage1(method: str, separation: float):
    """Train on `ChannelData`; `separation` scales mmd_weight (1.0) and mi_weight (0.1)."""
    cfg = OmegaConf.structured(DisentangleConfig(
        name=method, epochs=25, batch_size=32, lr=3e-3, club_hidden=32, club_lr=3e-3,
        mmd_weight=1.0 * separation, mi_weight=0.1 * separation))
    data = ChannelData()
    model, history, _ = train_disentangler(cfg, IdentitySource(), ["feat"], data, 2, 0, torch.device("cpu"), 64)
    pr, pi = pooled_parts(model, data.x)
    accuracy = float((model["feat"].head(pr).argmax(1) == data.y).float().mean())
    return accuracy, float(mmd2(pr, pi)), gaussian_mi(pr, pi), history


@pytest.mark.parametrize("method", ["max_mmd", "min_mi", "max_mmd_min_mi"])
def test_stage1_finds_the_label_and_moves_the_separation_term(method, one_thread):
    accuracy, mmd, mi, history = stage1(method, 1.0)
    assert accuracy >= 0.9  # pooled, the classes are ~6 noise SDs apart along channels 0 and 1
    assert len(history) == 25 and {"ce", "acc", "rec", "mmd2", "mi"} <= set(history[-1])
    # the same training with the separation weights at 0 (same seed, same batches) is the control
    _, mmd_control, mi_control, _ = stage1(method, 0.0)
    if "max_mmd" in method:
        assert mmd > mmd_control + 1.0
    if "min_mi" in method:  # measured by a Gaussian formula, not by the CLUB that was minimized
        assert mi < mi_control - 0.3


def test_reference_gap_is_the_distance_of_e_r_to_the_map():
    cfg = OmegaConf.structured(DisentangleConfig(name="max_mmd", probe_steps=5, diagnostics_split="train"))
    data = ChannelData()
    train = ({"feat": data.x}, data.y)
    model = Disentangler({"feat": 8}, 2).eval()
    last = model["feat"].relevant[-1]
    gap = lambda: evaluate_stage1(cfg, model, None, ["feat"], data, train, 2, 0, "cpu")[0]["feat"]["reference_gap"]  # noqa: E731
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()  # E_r(z) = 0: exactly as far as zero is
    assert gap() == 1.0
    with torch.no_grad():
        last.bias.fill_(1.0)  # E_r(z) = 1 everywhere
    assert gap() == pytest.approx(float(((1.0 - data.x) ** 2).mean() / (data.x ** 2).mean()), rel=1e-6)


@pytest.mark.parametrize("kept, irrelevant_informative", [((0, 1), False), ((2, 3, 4, 5, 6, 7), True)])
def test_irrelevant_probe_says_whether_z_i_still_holds_the_label(kept, irrelevant_informative):
    """A mask split keeping channels `kept` in z_r: the label lives in channels 0 and 1, so a
    probe on pool(z_i) is at chance when z_r keeps them and accurate when z_i does."""
    cfg = OmegaConf.structured(DisentangleConfig(name="max_mmd", probe_steps=200, probe_lr=0.05,
                                                 diagnostics_split="train", parts="mask"))
    data = ChannelData(n=256)
    train = ({"feat": data.x}, data.y)
    model = Disentangler({"feat": 8}, 2, parts="mask").eval()
    last = model["feat"].relevant[-1]
    with torch.no_grad():  # sigmoid(E_r(z)) = 1 on `kept`, 0 elsewhere
        last.weight.zero_()
        last.bias.fill_(-30.0)
        last.bias[list(kept)] = 30.0
    scores = evaluate_stage1(cfg, model, None, ["feat"], data, train, 2, 0, "cpu")[0]["feat"]
    assert scores["probe_acc"] >= 90
    if irrelevant_informative:
        assert scores["irrelevant_probe_acc"] >= 90
    else:
        assert scores["irrelevant_probe_acc"] <= 70  # chance is 50 (noise channels only)


def make_tred(reference="relevant", alpha=0.3, beta=0.2):
    cfg = OmegaConf.structured(REGISTRY["tred"].Config(alpha=alpha, beta=beta, layers=["feat"], reference=reference))
    return REGISTRY["tred"](cfg)


def test_penalty_is_the_delta_distance_to_the_chosen_reference():
    g = torch.Generator().manual_seed(0)
    fm_t = torch.randn(3, 4, 2, 2, generator=g, requires_grad=True)
    with torch.inference_mode():  # as the engine's source forward produces them
        fm_s = torch.randn(3, 4, 2, 2, generator=g)
    head = nn.Linear(4, 2)
    step = Step(nn.ModuleDict({"head": head}), None, None, None, {"feat": fm_t}, {"feat": fm_s})
    head_term = 0.2 * 0.5 * float(head.weight.detach().pow(2).sum())

    full = make_tred("full").penalty(step)
    by_hand = 0.3 * 0.5 * sum(float(((fm_t[b, c] - fm_s[b, c]).detach() ** 2).sum()) / 4
                              for b in range(3) for c in range(4))
    assert float(full["tred_fm"].detach()) == pytest.approx(by_hand, rel=1e-5)
    assert float(full["tred_head"].detach()) == pytest.approx(head_term, rel=1e-6)

    reg = make_tred("relevant")
    torch.manual_seed(1)
    reg.disentangler = Disentangler({"feat": 4}, 2).eval().requires_grad_(False)
    with torch.no_grad():
        ref = reg.disentangler["feat"].relevant(fm_s.clone())
    by_hand = 0.3 * 0.5 * sum(float(((fm_t[b, c] - ref[b, c]).detach() ** 2).sum()) / 4
                              for b in range(3) for c in range(4))
    terms = reg.penalty(step)
    assert float(terms["tred_fm"].detach()) == pytest.approx(by_hand, rel=1e-5)
    terms["tred_fm"].backward()  # the gradient reaches the trained network only
    assert fm_t.grad is not None and all(p.grad is None for p in reg.disentangler.parameters())


@pytest.mark.parametrize("override, message", [("regularizer.tred.reference=half", "reference"),
                                               ("regularizer.tred.distance=l1", "distance")])
def test_bad_knobs_fail_early(override, message):
    """Checked when the regularizer is built, before data or models (disentangle.* values: tests/test_config.py)."""
    bad = validate(compose_cfg(["regularizer=tred", override]))
    with pytest.raises(ConfigError, match=message):
        build_regularizers(bad.regularizer)


def test_default_recipe():
    cfg = validate(compose_cfg(["regularizer=tred"]))
    # the default recipe (docs/tred.md, "Ablations"): the projection split on DELTA's layers, with attention
    assert cfg.disentangle.parts == "projection" and cfg.regularizer.tred.channel_weights == "attention"
    assert list(cfg.regularizer.tred.layers) == list(cfg.backbone.feature_layers)


SMALL_STAGE1 = ["dataset.test_per_class=5", "disentangle.epochs=2", "disentangle.diagnostics_max_images=64",
                "disentangle.probe_steps=20", "disentangle.club_hidden=32"]
DIAGNOSTICS = ["disentangle_ce", "disentangle_acc", "disentangle_rec", "disentangle_mmd2", "disentangle_mi",
               "disentangle_relevant_test_acc", "source_probe_test_acc", "disentangle_cache_hit", "stage1_time_s",
               "disentangle_reference_gap", "disentangle_irrelevant_probe_test_acc",
               "finetune_time_s", "tred_attention_time_s", "tred_attention_cache_hit", "stage1_compute_time_s"]


@pytest.mark.parametrize("method", ["max_mmd", "min_mi", "max_mmd_min_mi"])
def test_smoke_run_writes_the_diagnostics(method, tmp_path, smoke):
    result = smoke("regularizer=tred", f"disentangle={method}", *SMALL_STAGE1)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["status"] == "completed" and saved["disentangle"] == method and saved["method"] == f"tred-{method}"
    for key in DIAGNOSTICS:
        assert saved.get(key) is not None, key
    assert saved["disentangle_cache_hit"] is False and 0 <= saved["source_probe_test_acc"] <= 100
    assert saved == {k: v for k, v in result.items()}
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows if r["stage"] == "disentangle"] == ["1", "2"]
    assert all(r["tred_fm"] for r in rows if r["stage"] == "finetune")
    kept = tmp_path / "run" / "disentangler.pt"
    cache_file = next((tmp_path / "cache" / "disentangler").glob("*.pt"))
    assert os.path.samefile(kept, cache_file)  # a hard link to the cache entry, not a second copy
    assert torch.load(kept, weights_only=False)["key"]["disentangle"]["name"] == method
    if method == "max_mmd":  # a second run of the sweep (other alpha) reuses the cached disentangler
        from tred.run import run

        cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", "regularizer=tred", f"disentangle={method}",
                           "regularizer.tred.alpha=0.1", *SMALL_STAGE1])
        again = run(cfg, tmp_path / "run2")
        assert again["disentangle_cache_hit"] is True and again["tred_attention_cache_hit"] is True
        assert again["disentangle_mmd2"] == saved["disentangle_mmd2"]
        # a cache hit costs the run nothing, but stage 1's cost is the same as where it was computed
        parts = ("disentangle_train_time_s", "disentangle_eval_time_s", "tred_attention_time_s")
        assert saved["tred_attention_time_s"] > 0 and saved["tred_attention_cache_hit"] is False
        for res in (saved, again):
            assert res["stage1_compute_time_s"] == pytest.approx(sum(saved[k] for k in parts))


def test_mask_parts_split_the_map():
    torch.manual_seed(0)
    model = Disentangler({"feat": 8}, 2, parts="mask").eval()
    z = torch.rand(5, 8, 2, 2)
    with torch.no_grad():
        zr, zi = model["feat"](z)
    torch.testing.assert_close(zr + zi, z)
    assert bool((zr >= 0).all()) and bool((zr <= z).all()) and model["feat"].irrelevant is None
    restored = Disentangler.from_export(model.export()).eval()
    assert restored.parts == "mask"
    with torch.no_grad():
        assert torch.equal(restored["feat"].relevant_part(z), zr)


@pytest.mark.parametrize("preset, method", [("tred_mask_max_mmd", "tred-mask-max_mmd"),
                                            ("tred_projection", "tred-projection")])
def test_split_presets_run_and_stay_within_the_map(preset, method, smoke):
    result = smoke(f"method={preset}", *SMALL_STAGE1)
    assert result["status"] == "completed" and result["method"] == method
    assert 0 <= result["disentangle_reference_gap"] <= 1


def test_relative_distance_is_scale_free():
    """distance=relative divides the DELTA sum by the source map's own: scaling the maps (and
    the reference with them) leaves it unchanged, and a target at zero scores exactly 1 with
    reference=full."""
    g = torch.Generator().manual_seed(1)
    fm_s = torch.randn(4, 6, 3, 3, generator=g)
    fm_t = fm_s + 0.1 * torch.randn(4, 6, 3, 3, generator=g)
    cfg = OmegaConf.structured(REGISTRY["tred"].Config(alpha=1.0, beta=0.0, layers=["feat"], reference="full",
                                                       distance="relative"))
    tred = REGISTRY["tred"](cfg)
    head = nn.Linear(6, 2)

    def term(t, s):
        step = Step(nn.ModuleDict({"head": head}), None, None, None, {"feat": t}, {"feat": s})
        return float(tred.penalty(step)["tred_fm"])

    by_hand = float(((fm_t - fm_s) ** 2).sum() / (fm_s ** 2).sum())
    assert term(fm_t, fm_s) == pytest.approx(by_hand, rel=1e-6)
    assert term(100 * fm_t, 100 * fm_s) == pytest.approx(by_hand, rel=1e-5)
    assert term(torch.zeros_like(fm_s), fm_s) == pytest.approx(1.0, rel=1e-6)


def test_tie_term_pulls_the_reference_to_the_map():
    """With tie_weight the stage-1 loss includes mean (z_r - z)^2 / mean z^2, which lowers the
    reference gap of the default split against the same training without it."""
    def gap(tie):
        cfg = OmegaConf.structured(DisentangleConfig(name="max_mmd", epochs=15, batch_size=32, lr=3e-3,
                                                     club_hidden=16, tie_weight=tie, probe_steps=5,
                                                     diagnostics_split="train"))
        data = ChannelData()
        model, history, train = train_disentangler(cfg, IdentitySource(), ["feat"], data, 2, 0, torch.device("cpu"), 64)
        assert "tie" in history[-1]
        return evaluate_stage1(cfg, model, None, ["feat"], data, train, 2, 0, "cpu")[0]["feat"]["reference_gap"]

    assert gap(10.0) < 1.0 < gap(0.0)  # measured 0.69 and 1.32: closer to z than zero is, only with the tie


def test_projection_split_keeps_the_label_in_z_r_and_none_in_z_i():
    """parts=projection on `ChannelData` (the label shifts channels 0 and 1 together): P is the
    rank-1 projection onto that shift, so h_r and the source probe read the label, a probe on
    pool(z_i) is at chance (50%), z_r + z_i = z exactly, and the gap is the energy outside the span."""
    cfg = OmegaConf.structured(DisentangleConfig(name="max_mmd_min_mi", parts="projection", probe_steps=200,
                                                 probe_lr=0.05, diagnostics_split="train"))
    data = ChannelData(n=256)
    model, history, train = train_disentangler(cfg, IdentitySource(), ["feat"], data, 2, 0, torch.device("cpu"), 64)
    assert history == []  # nothing trained but h_r, in closed form
    basis = model["feat"].basis
    assert basis.shape == (1, 8)
    assert basis[0, :2].abs().min() > 0.6 and basis[0, 2:].abs().max() < 0.2  # ~ (1, 1, 0, ...) / sqrt(2)
    z_r, z_i = model["feat"](data.x)
    torch.testing.assert_close(z_r + z_i, data.x)
    scores = evaluate_stage1(cfg, model, None, ["feat"], data, train, 2, 0, "cpu")[0]["feat"]
    assert scores["relevant_acc"] >= 90 and scores["probe_acc"] >= 90
    assert scores["irrelevant_probe_acc"] <= 65
    energy_out = float(((z_r - data.x) ** 2).mean() / (data.x ** 2).mean())
    assert scores["reference_gap"] == pytest.approx(energy_out) and 0.5 < energy_out < 1.0
    # what the cache and the run directory store rebuilds the same split
    rebuilt = Disentangler.from_export(model.export()).eval()
    torch.testing.assert_close(rebuilt["feat"](data.x)[0], z_r)
