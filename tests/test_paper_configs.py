"""The paper experiments compose and validate; per-dataset weights reach only selected regularizers."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tred.config import validate
from tred.data.layouts import DATASETS

from conftest import CONFIGS, compose_cfg

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
    """flowers_table sets TRED's alpha via regularizer_overrides (configs/tuned/flowers102.yaml);
    a command-line or sweep value wins."""
    typed = ["method=tred_max_mmd", "regularizer.tred.alpha=0.01"]
    cfg = compose_cfg(["experiment=flowers_table", *typed], smoke=False)
    tuned = OmegaConf.load(CONFIGS / "tuned" / "flowers102.yaml").regularizer_overrides.tred.alpha
    assert tuned != 0.01 and validate(cfg).regularizer.tred.alpha == tuned  # nothing typed: the experiment's
    assert validate(cfg, explicit=typed).regularizer.tred.alpha == 0.01
    assert validate(cfg, explicit=["++regularizer.tred.beta=0.5"]).regularizer.tred.alpha == tuned
