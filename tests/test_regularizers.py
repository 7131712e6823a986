"""Regularizer modules: smoke runs, composition, weight decay, the shared source forward, errors."""

import csv

import pytest
import torch

from conftest import compose_cfg
from tred.config import validate
from tred.engine.loop import Finetuner, optimizer_weight_decay
from tred.engine.metrics import MetricsLog
from tred.errors import ConfigError
from tred.models import build_models
from tred.regularizers import build_regularizers
from tred.regularizers.l2sp import sp_parameters
from tred.run import setup_context

FAST = ["dataset.test_per_class=2", "trainer.max_iters=2", "trainer.log_every=1"]
DELTA_FAST = ["regularizer.delta.attention_epochs=1", "regularizer.delta.attention_batches=1"]
TERMS = {"l2": [], "l2sp": ["l2sp_sp", "l2sp_head"], "at": ["at"], "delta": ["delta_fm", "delta_head"],
         "bss": ["bss"], "[l2sp,bss]": ["l2sp_sp", "l2sp_head", "bss"]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("reg", list(TERMS))
def test_smoke_run_writes_complete_result(smoke, tmp_path, reg):
    result = smoke(f"regularizer={reg}", *FAST, *(DELTA_FAST if reg == "delta" else []))
    assert result["status"] == "completed" and result["iters"] == 2
    assert result["regularizer"] == reg.strip("[]").replace(",", "+")
    for key in ("test_acc", "dataset", "seed", "sample_rate", "wall_time_s", "disentangle"):
        assert key in result
    with open(tmp_path / "run" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["stage"] == "finetune"]
    assert rows and all(float(rows[-1][t]) >= 0 for t in TERMS[reg] + ["ce", "loss"])
    if reg == "delta":  # the attention was computed and cached for the next run of the sweep
        assert list((tmp_path / "cache" / "channel_attention").glob("*.pt"))
        assert result["delta_attention_cache_hit"] is False and result["delta_attention_time_s"] > 0


def test_unknown_layer_fails_at_start(smoke):
    with pytest.raises(ConfigError, match=r"unknown layer name\(s\) \['blocks.99'.*valid names include.*blocks.6"):
        smoke("regularizer=at", "regularizer.at.layers=[blocks.4,blocks.99]")


def _built(reg, *extra):
    cfg = validate(compose_cfg([f"regularizer={reg}", *extra]))
    return cfg, build_regularizers(cfg.regularizer)


def test_composition_and_defaults():
    cfg, regs = _built("[l2sp,bss]")
    assert [r.name for r in regs] == ["l2sp", "bss"]
    assert cfg.regularizer.l2sp.alpha == 0.1 and cfg.regularizer.bss.eta == 1e-3
    cfg, (at,) = _built("at")
    assert at.source_layers == at.target_layers == tuple(cfg.backbone.feature_layers)


@pytest.mark.parametrize("reg, decay", [("l2", 1e-4), ("l2sp", 0.0), ("at", 0.0), ("delta", 0.0), ("bss", 0.0),
                                        ("[l2sp,bss]", 0.0)])
def test_weight_decay_only_for_l2(reg, decay):
    _, regs = _built(reg)
    assert optimizer_weight_decay(regs, None) == decay


def _finetuner(reg, *extra):
    uniform = ["regularizer.delta.channel_attention=false"] if "delta" in reg else []
    cfg, regs = _built(reg, *uniform, *extra)
    from tred.data import build_data

    data = build_data(cfg.dataset, cfg.seed)
    model, source = build_models(cfg.backbone, data.num_classes, cfg.seed)
    ctx = setup_context(cfg, model, source, data, torch.device("cpu"), None, MetricsLog("/dev/null"))
    for r in regs:
        r.setup(ctx)
    return Finetuner(model, source, regs, data, cfg.trainer, cfg.seed, torch.device("cpu"), ctx.metrics), data


@pytest.mark.parametrize("reg, forwards", [("[l2sp,bss]", 0), ("[at,delta]", 1)])
def test_one_shared_source_forward_without_autograd(reg, forwards):
    trainer, data = _finetuner(reg)
    calls = []
    trainer.source.register_forward_hook(lambda m, i, out: calls.append(out.requires_grad))
    terms = trainer.step(*data.train_batch(0, 8, 0))
    assert len(calls) == forwards and not any(calls)
    assert all(p.grad is None for p in trainer.source.parameters())
    assert torch.isfinite(terms["loss"])
    trainer.close()


def test_l2sp_terms_at_start():
    trainer, data = _finetuner("l2sp", "regularizer.l2sp.beta=0.5")
    x, y = data.train_batch(0, 8, 0)
    terms = trainer.step(x, y)  # the penalty is evaluated before the update: w == w0
    assert terms["l2sp_sp"].item() == 0.0
    trainer.close()


def test_l2sp_excludes_norm_and_bias():
    model, _ = build_models(validate(compose_cfg()).backbone, 10, 0)
    all_names = sp_parameters(model.backbone, False)
    kept = sp_parameters(model.backbone, True)
    assert len(all_names) == len(list(model.backbone.parameters()))
    assert kept and all(n.endswith("weight") and ".bn" not in n and not n.startswith("body.bn") for n in kept)
    assert "body.conv_stem.weight" in kept and "body.bn1.weight" not in kept and len(kept) < len(all_names)
