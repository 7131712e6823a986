"""Every config group option composes and validates; bad values fail before any work."""

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import CONFIGS, ROOT, compose_cfg
from tred.config import check_nonnegative, validate
from tred.engine.checkpoint import flatten
from tred.errors import ConfigError
from tred.methods import method_name
from tred.schema import GROUP_SCHEMAS, TopConfig, TrainerConfig, defaults_of, method_defaults


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


@pytest.mark.parametrize("overrides, message", [
    ("dataset.sample_rate=0", r"dataset.sample_rate must be in \(0, 1\]"),
    ("dataset.sample_rate=1.5", r"dataset.sample_rate must be in \(0, 1\]"),
    ("trainer.max_iters=0", r"trainer.max_iters must be > 0, got 0"),
    ("dataset.image_size=16", r"image_size=16 is too small for backbone efficientnet_lite0: use at least 32"),
    ("resume=sometimes", "resume"),
    ("trainer.checkpoint_every=-1", r"checkpoint_every must be >= 0"),
    ("regularizer.l2.weight_decay=-1e-4", r"regularizer.l2.weight_decay must be >= 0"),
    ("regularizer=tred disentangle.diagnostics_split=val", "diagnostics_split"),
])
def test_out_of_range_values(overrides, message):
    """Checked by `validate`, which `run` calls first (tests/test_run.py: before any work)."""
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg(overrides.split()))


def test_negative_weights_checked_by_name():
    ok = OmegaConf.create({"alpha": 0.0, "beta": 1, "rec_weight": 2.0, "k": -1, "inner": {"eta": 0.1}})
    check_nonnegative(ok, "regularizer.x")
    for bad in ({"alpha": -0.1}, {"inner": {"mmd_weight": -1}}, {"weights": -2}):
        with pytest.raises(ConfigError, match="must be >= 0"):
            check_nonnegative(OmegaConf.create(bad), "regularizer.x")


def test_a_key_without_a_default_must_be_set():
    """The identity of a group option (its name, a backbone's normalization ...) has no default."""
    with pytest.raises(ConfigError, match="`backbone.mean` has no value"):
        validate(compose_cfg(["~backbone.mean"]))


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


@pytest.mark.parametrize("override",
                         ["regularizer=[l2sp,l2sp]", "regularizer=[l2sp, bss, l2sp]", "+regularizer=[bss,bss]"])
def test_a_regularizer_listed_twice_is_refused(override):
    """Hydra merges a repeated option into one (the composed config shows a single l2sp)."""
    cfg = compose_cfg(["regularizer=[l2sp,bss]"])
    with pytest.raises(ConfigError, match=r"^\+?regularizer=.* names (`l2sp`|`bss`) more than once; list each "
                                          r"regularizer once"):
        validate(cfg, explicit=[override])
    validate(cfg, explicit=["regularizer=[l2sp,bss]", "regularizer.l2sp.alpha=0.1"])


def repeated_defaults(option: dict, defaults: dict) -> list[str]:
    """Keys of `option` (a yaml, unresolved: an interpolation is never a default) whose value is the default."""
    have = flatten(defaults)
    return sorted(k for k, v in flatten(option).items() if k in have and have[k] == v)


@pytest.mark.parametrize("group", ["dataset", "backbone", "disentangle", "logger", "regularizer"])
def test_no_group_option_repeats_a_default(group):
    """Each default is written once, in its dataclass (tred/schema.py, a method's Config)."""
    defaults = method_defaults() if group == "regularizer" else defaults_of(GROUP_SCHEMAS[group])
    for opt in options(group):
        option = OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{opt}.yaml"))
        option.pop("defaults", None)
        assert not repeated_defaults(option, defaults), f"configs/{group}/{opt}.yaml"


def test_train_yaml_repeats_no_default():
    train = OmegaConf.to_container(OmegaConf.load(CONFIGS / "train.yaml"))
    train = {k: v for k, v in train.items() if k not in ("defaults", "hydra")}
    assert not repeated_defaults(train, {**defaults_of(TopConfig), "trainer": defaults_of(TrainerConfig)})


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")))
def test_no_experiment_repeats_a_default(name):
    """An experiment holds only what differs from the trainer, the top-level keys and the methods'
    Configs (configs/tuned/*.yaml, written by the tuning sweeps, state every chosen weight)."""
    exp = OmegaConf.to_container(OmegaConf.load(CONFIGS / "experiment" / f"{name}.yaml"))
    top = {k: v for k, v in exp.items() if k in ("trainer", "regularizer_overrides") or k in defaults_of(TopConfig)}
    methods = method_defaults()  # what regularizer=<name> gives: its Config, then its yaml's values
    for reg in methods:
        path = CONFIGS / "regularizer" / f"{reg}.yaml"
        if path.is_file():
            methods[reg].update(OmegaConf.to_container(OmegaConf.load(path)).get(reg) or {})
    defaults = {**defaults_of(TopConfig), "trainer": defaults_of(TrainerConfig), "regularizer_overrides": methods}
    assert not repeated_defaults(top, defaults), f"configs/experiment/{name}.yaml"


def test_composing_imports_no_torch():
    """Bad command lines fail in about a second (scripts/train.py): composition needs tred.schema only."""
    code = ("import sys\n"
            "from hydra import compose, initialize_config_dir\n"
            "from tred.schema import register_resolvers\n"
            "register_resolvers()\n"
            f"with initialize_config_dir(config_dir={str(CONFIGS)!r}, version_base='1.3'):\n"
            "    cfg = compose(config_name='train', overrides=['regularizer=[tred,delta,l2sp]', 'dataset=cub200'])\n"
            "assert cfg.regularizer.delta.attention_epochs == 10, cfg.regularizer\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   timeout=300)
