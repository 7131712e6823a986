"""Every config group option composes and validates; bad values fail before any work."""

import pytest

from conftest import CONFIGS, compose_cfg
from tred.config import validate
from tred.methods import method_name
from tred.errors import ConfigError


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["dataset", "backbone", "regularizer", "disentangle", "logger", "experiment"])
def test_every_group_option_composes_and_validates(group):
    assert options(group), f"configs/{group} is empty"
    for opt in options(group):
        extra = ["regularizer=tred"] if group == "disentangle" else []
        cfg = validate(compose_cfg([f"{group}={opt}", *extra], smoke=False))
        assert cfg.trainer.max_iters > 0


def test_smoke_shrinks_the_run():
    cfg = validate(compose_cfg())
    assert cfg.trainer.max_iters <= 10 and cfg.dataset.train_per_class <= 10


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="trainer.*not_a_key|not_a_key"):
        validate(compose_cfg(["+trainer.not_a_key=1"]))


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="max_iters"):
        validate(compose_cfg(["trainer.max_iters=lots"]))


@pytest.mark.parametrize("override, message", [
    ("dataset.sample_rate=0", "sample_rate"),
    ("dataset.sample_rate=1.5", "sample_rate"),
    ("trainer.max_iters=0", "max_iters"),
    ("dataset.image_size=8", "too small"),
    ("resume=sometimes", "resume"),
])
def test_out_of_range_values(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg([override]))


def test_disentangle_is_dropped_unless_tred():
    assert validate(compose_cfg()).disentangle is None


def test_method_names():
    assert method_name({"l2": {}}) == "l2"
    assert method_name({"l2sp": {}, "bss": {}}) == "l2sp+bss"
    assert method_name({"tred": {}}, "max_mmd") == "tred-max_mmd"
    assert method_name({"tred": {"reference": "relevant"}}, "max_mmd", "mask") == "tred-mask-max_mmd"
    # toward the whole source map there is no stage 1, so no separation or split in the name
    assert method_name({"tred": {"reference": "full"}}, "max_mmd", "mask") == "tred-full"
    assert method_name(["l2sp", "tred"], "min_mi", reference="full") == "l2sp+tred-full"
    assert method_name({"tred": {}}, "max_mmd", "projection") == "tred-projection"  # no separation term


def test_the_full_reference_control_is_its_own_method():
    from tred.methods import method_of_config

    cfg = validate(compose_cfg(["method=tred_full"]))
    assert cfg.regularizer.tred.reference == "full"
    assert method_of_config(cfg) == "tred-full" and cfg.run_name.startswith("tred-full/")


@pytest.mark.parametrize("override", ["regularizer=[l2sp,l2sp]", "regularizer=[l2sp, bss, l2sp]", "+regularizer=[bss,bss]"])
def test_a_regularizer_listed_twice_is_refused(override):
    """Hydra merges a repeated option into one (the composed config shows a single l2sp)."""
    cfg = compose_cfg(["regularizer=[l2sp,bss]"])
    with pytest.raises(ConfigError, match=r"^\+?regularizer=.* names (`l2sp`|`bss`) more than once; list each "
                                          r"regularizer once"):
        validate(cfg, explicit=[override])
    validate(cfg, explicit=["regularizer=[l2sp,bss]", "regularizer.l2sp.alpha=0.1"])
