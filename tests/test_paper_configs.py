"""The paper experiments compose and validate; per-dataset weights reach only selected regularizers."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import CONFIGS, compose_cfg
from tred.config import validate
from tred.data.layouts import DATASETS
from tred.errors import ConfigError

PAPER = ["cub200", "stanford_dogs", "stanford_cars", "fgvc_aircraft", "flowers102", "mit_indoor67",
         "caltech256_30", "caltech256_60"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_protocol(name):
    cfg = validate(compose_cfg([f"experiment=paper_{name}", "regularizer=delta"], smoke=False))
    t = cfg.trainer
    assert (t.max_iters, t.batch_size, t.lr, t.momentum, t.lr_gamma) == (9000, 48, 0.01, 0.9, 0.1)
    assert [round(m * t.max_iters) for m in t.lr_milestones] == [6000]
    assert cfg.dataset.name == name and name in DATASETS
    assert (cfg.dataset.image_size, cfg.dataset.resize, cfg.dataset.keep_aspect) == (224, 256, name == "cub200")
    assert cfg.backbone.name == ("resnet50_places365" if name == "mit_indoor67" else "resnet101")
    assert cfg.regularizer.delta.alpha == (0.1 if name == "stanford_dogs" else 0.01)
    assert "regularizer_overrides" not in cfg  # merged into the selected regularizers


def test_table_adds_each_dataset_experiment():
    cfg = compose_cfg(["experiment=paper_table", "+experiment@_global_=paper_stanford_dogs"], smoke=False)
    assert (cfg.dataset.name, cfg.backbone.name, cfg.sweep_name) == ("stanford_dogs", "resnet101", "paper_table")


def test_overrides_only_touch_selected_regularizers():
    cfg = validate(compose_cfg(["+regularizer_overrides={l2: {weight_decay: 0.5}, delta: {alpha: 0.1}}"]))
    assert dict(cfg.regularizer) == {"l2": {"weight_decay": 0.5}}


def test_what_the_user_typed_beats_an_experiments_overrides():
    """flowers_table sets each TRED row's alpha via method_overrides (configs/tuned/flowers102_5pc_first.yaml);
    a command-line or sweep value wins."""
    typed = ["method=tred_max_mmd", "regularizer.tred.alpha=0.01"]
    cfg = compose_cfg(["experiment=flowers_table", *typed], smoke=False)
    tuned = OmegaConf.load(CONFIGS / "tuned" / "flowers102_5pc_first.yaml").method_overrides["tred-max_mmd"].tred.alpha
    assert tuned != 0.01 and validate(cfg).regularizer.tred.alpha == tuned  # nothing typed: the experiment's
    assert validate(cfg, explicit=typed).regularizer.tred.alpha == 0.01
    assert validate(cfg, explicit=["++regularizer.tred.beta=0.5"]).regularizer.tred.alpha == tuned


METHOD_OVERRIDES = ("+method_overrides={tred-projection: {tred: {alpha: 0.003}}, "
                    "tred-max_mmd: {tred: {alpha: 0.02, beta: 0.5}}}")


@pytest.mark.parametrize("method, alpha, beta", [
    ("tred_projection", 0.003, None), ("tred_max_mmd", 0.02, 0.5), ("tred_min_mi", None, None),
    ("tred_full", None, None)])
def test_method_overrides_reach_only_their_method(method, alpha, beta):
    """Two methods of one regularizer (the TRED rows) each get their own values, after
    regularizer_overrides; a method without an entry keeps what it had; what is typed wins."""
    base = validate(compose_cfg([f"method={method}", "+regularizer_overrides={tred: {alpha: 0.5}}"])).regularizer.tred
    cfg = validate(compose_cfg([f"method={method}", "+regularizer_overrides={tred: {alpha: 0.5}}", METHOD_OVERRIDES]))
    tred = cfg.regularizer.tred
    assert base.alpha == 0.5 and tred.alpha == (alpha if alpha is not None else 0.5)
    assert tred.beta == (beta if beta is not None else base.beta)
    assert "method_overrides" not in cfg
    typed = ["regularizer.tred.alpha=0.7"]
    typed_cfg = validate(compose_cfg([f"method={method}", METHOD_OVERRIDES, *typed]), explicit=typed)
    assert typed_cfg.regularizer.tred.alpha == 0.7
    scaled = validate(compose_cfg([f"method={method}", METHOD_OVERRIDES, "weight_scale=0.1"])).regularizer.tred.alpha
    unscaled = validate(compose_cfg([f"method={method}", METHOD_OVERRIDES])).regularizer.tred.alpha
    assert scaled == pytest.approx(0.1 * unscaled)  # the tuning grid scales the method's own weight


def test_method_override_for_a_regularizer_the_method_lacks_is_refused():
    cfg = compose_cfg(["method=tred_projection", "+method_overrides={tred-projection: {l2sp: {alpha: 0.1}}}"])
    with pytest.raises(ConfigError, match="method_overrides.tred-projection.l2sp: method `tred-projection` "
                                          "does not select regularizer `l2sp`"):
        validate(cfg)
