"""Paper-scale models and GPU path: Places365 key conversion, precision choice, CPU bit-identity,
and a ResNet-50 smoke run on a fake CUB tree."""

from __future__ import annotations

import pytest
import torch
import torchvision

import fake_trees
import tred.run
from conftest import compose_cfg
from tred.config import validate
from tred.engine.precision import Precision, autocast_dtype
from tred.errors import ConfigError
from tred.models import build_backbone


def places365_checkpoint(path, arch=torchvision.models.resnet50):
    """A file in the official Places365 format: DataParallel keys, 365-way fc, training metadata."""
    net = arch(num_classes=365)
    for p in net.parameters():
        p.data.normal_()
    state = {"module." + k: v for k, v in net.state_dict().items()}
    torch.save({"epoch": 90, "arch": "resnet50", "state_dict": state, "best_prec1": 54.65}, path)
    return net.state_dict()


def backbone_cfg(**over):
    cfg = validate(compose_cfg(["backbone=resnet50_places365"], smoke=False)).backbone
    cfg.update(over)
    return cfg


def test_places365_keys_converted(tmp_path):
    path = tmp_path / "resnet50_places365.pth.tar"
    ref = places365_checkpoint(path)
    body = build_backbone(backbone_cfg(pretrained=str(path))).body
    got = body.state_dict()
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer4.2.bn3.weight"):
        assert torch.equal(got[k], ref[k])
    assert not any(k.startswith("fc.") and got[k].shape[0] == 365 for k in got)


def test_places365_mismatch_and_missing_file(tmp_path):
    path = tmp_path / "r18.pth.tar"
    places365_checkpoint(path, torchvision.models.resnet18)
    with pytest.raises(ConfigError, match="does not fit.*(missing|shape)"):
        build_backbone(backbone_cfg(pretrained=str(path)))
    with pytest.raises(ConfigError, match="no such file.*resnet50_places365.pth.tar"):
        build_backbone(backbone_cfg(pretrained=str(tmp_path / "nope.pth.tar")))


def test_default_places365_path_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TRED_WEIGHTS", str(tmp_path))
    assert backbone_cfg().pretrained == f"{tmp_path}/resnet50_places365.pth.tar"


def test_precision_choice():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype(cuda, True, True) is torch.bfloat16
    assert autocast_dtype(cuda, True, False) is torch.float16
    assert autocast_dtype(cuda, False, True) is None
    assert autocast_dtype(cpu, True, True) is None
    p = Precision(cpu, True)
    x = torch.randn(2, 3, 4, 4)
    assert p.scaler is None and p.input(x) is x and p.as_float32(x) is x


def _final_weights_and_result(tmp_path, monkeypatch, amp):
    seen = {}
    real = tred.run.evaluate

    def capture(model, *args, **kwargs):
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(tred.run, "evaluate", capture)
    cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", f"trainer.amp={amp}", "trainer.device=cpu",
                       "dataset.test_per_class=5", "trainer.max_iters=2"])
    return seen, tred.run.run(cfg, tmp_path / f"run_{amp}")


def test_cpu_numbers_do_not_depend_on_the_amp_switch(tmp_path, monkeypatch):
    w_on, r_on = _final_weights_and_result(tmp_path, monkeypatch, True)
    w_off, r_off = _final_weights_and_result(tmp_path, monkeypatch, False)
    assert r_on["status"] == r_off["status"] == "completed"
    assert r_on["test_acc"] == r_off["test_acc"] and r_on["test_loss"] == r_off["test_loss"]
    assert w_on.keys() == w_off.keys() and all(torch.equal(w_on[k], w_off[k]) for k in w_on)
    start = tred.models.build_models(validate(compose_cfg()).backbone, 10, 0)[0].state_dict()
    assert not torch.equal(start["head.weight"], w_on["head.weight"])  # training did change the weights


def test_resnet50_smoke_run_on_fake_cub(tmp_path):
    fake_trees.cub200(tmp_path / "cub", per_class=(4, 2), classes=3)
    cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", "dataset=cub200", f"dataset.root={tmp_path / 'cub'}",
                       "dataset.num_classes=3", "dataset.image_size=32", "dataset.resize=40",
                       "backbone=resnet50", "backbone.pretrained=false",
                       "trainer.max_iters=2", "trainer.batch_size=4", "trainer.eval_batch_size=8"])
    result = tred.run.run(cfg, tmp_path / "run")
    assert result["status"] == "completed" and result["iters"] == 2
    assert (result["train_size"], result["test_size"], result["backbone"]) == (12, 6, "resnet50")
    assert 0 <= result["test_acc"] <= 100
