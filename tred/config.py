"""Validation: the composed Hydra config is checked against the schemas before any work starts.

Each group is merged into its dataclass (tred/schema.py), so an unknown key, a value of the
wrong type or a key without a value raises a `ConfigError` naming the key. Regularizers bring
their own schema (`Regularizer.Config`). This module imports the regularizers (torch);
composing a config needs only tred.schema.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from tred.errors import ConfigError
from tred.kernels import MODES as KERNEL_MODES
from tred.methods import method_name
from tred.regularizers import REGISTRY
from tred.schema import GROUP_SCHEMAS, TopConfig, check_overrides
from tred.stage1.disentangle import DIAGNOSTIC_SPLITS, METHODS
from tred.stage1.disentangler import PARTS

RESUME_MODES = ("auto", "never")
PENALTY_CHECKS = ("error", "warn", "off")


def _merge(schema: type, node: Any, where: str) -> dict:
    """`node` merged into `schema`, as a plain dict; a `ConfigError` names a bad or unset key."""
    try:
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), node), throw_on_missing=True)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None)
        at = f"{where}.{key}" if key and where != "<root>" else (key or where)
        if isinstance(exc, MissingMandatoryValue):
            raise ConfigError(f"`{at}` has no value (its schema has no default: the config must set it)") from None
        raise ConfigError(f"invalid config at `{at}`: {msg}") from None


def _explicit_keys(overrides) -> set[str]:
    """`regularizer.tred.alpha` from `regularizer.tred.alpha=1e-3` (also `+key=`, `++key=`)."""
    return {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}


def _untyped(values: Any, reg: str, typed: set[str]) -> dict:
    """`values` (keys of regularizer `reg`) without the keys the command line sets."""
    return {k: v for k, v in (values or {}).items() if f"regularizer.{reg}.{k}" not in typed}


def _method_overrides(raw: dict, regs: dict, dis: dict, typed: set[str]) -> dict:
    """This run's entry of `method_overrides` ({method name: {regularizer: {key: value}}}; names
    as in tred/methods.py), checked: it may only set regularizers the method selects. Two methods
    of one regularizer (the TRED rows) get a weight each this way."""
    table = raw.get("method_overrides") or {}
    if not table:
        return {}
    name = method_name(regs, dis["name"], dis["parts"])
    mine = table.get(name) or {}
    for reg in mine:
        if reg not in regs:
            raise ConfigError(f"method_overrides.{name}.{reg}: method `{name}` does not select regularizer `{reg}`")
    return {reg: _untyped(values, reg, typed) for reg, values in mine.items()}


def validate(cfg: DictConfig, explicit=()) -> DictConfig:
    """Return a validated copy of `cfg` (defaults filled in) or raise `ConfigError`.

    `regularizer_overrides` (an experiment's values for the regularizers a run selects), then
    `method_overrides.<method>` (values for one method only, e.g. `tred-projection`) fill
    `regularizer.<name>.<key>` unless `explicit` (the run's command-line and sweep overrides,
    `key=value` strings) sets that key: what the user typed wins.
    """
    check_overrides(explicit)
    raw = OmegaConf.to_container(cfg, resolve=True)
    top = {k: v for k, v in raw.items() if k not in GROUP_SCHEMAS and k != "regularizer"}
    typed = _explicit_keys(explicit)
    extra = {name: _untyped(values, name, typed) for name, values in (raw.get("regularizer_overrides") or {}).items()}
    out = _merge(TopConfig, top, "<root>")
    for group, schema in GROUP_SCHEMAS.items():
        if group not in raw:
            raise ConfigError(f"the config has no `{group}` group; add one to configs/train.yaml")
        out[group] = _merge(schema, raw[group], group)
    regs = raw.get("regularizer")
    if not regs:
        raise ConfigError(
            f"no regularizer selected; pick one or more of {sorted(REGISTRY)}, "
            "e.g. regularizer=l2 or regularizer=[l2sp,bss]")
    for name in regs:
        if name not in REGISTRY:
            raise ConfigError(f"unknown regularizer `{name}`; valid: {sorted(REGISTRY)}")
    regs = {name: OmegaConf.to_container(OmegaConf.merge(node or {}, extra.get(name) or {}))
            for name, node in regs.items()}
    per_method = _method_overrides(raw, regs, out["disentangle"], typed)
    out["regularizer"] = {}
    for name, node in regs.items():
        node = OmegaConf.merge(node, per_method.get(name) or {})
        out["regularizer"][name] = _merge(REGISTRY[name].Config, node, f"regularizer.{name}")
        key = REGISTRY[name].weight_key
        if key is not None and out["weight_scale"] != 1.0:
            scaled = out["regularizer"][name][key] * out["weight_scale"]
            out["regularizer"][name][key] = float(f"{scaled:.12g}")  # 1e-2 * 1e-3 = 1e-05, not 1.0000000000000001e-05
    out.pop("regularizer_overrides", None)  # merged into the selected regularizers above
    out.pop("method_overrides", None)
    if "tred" not in out["regularizer"]:
        out["disentangle"] = None  # only TRED reads it; keeps other runs' configs independent of it
    out = OmegaConf.create(out)
    if out.resume not in RESUME_MODES:
        raise ConfigError(f"resume={out.resume!r}; valid: {list(RESUME_MODES)}")
    check_ranges(out)
    for name, node in out.regularizer.items():
        check_nonnegative(node, f"regularizer.{name}")
    if out.disentangle is not None:
        check_nonnegative(out.disentangle, "disentangle")
    return out


# Numeric fields with these names are loss weights or decays: a negative one is never meant.
WEIGHT_NAMES = ("alpha", "beta", "eta", "lambda", "weight_decay")


def is_weight_name(key: str) -> bool:
    return key in WEIGHT_NAMES or key.startswith("weight") or key.endswith("_weight")


def check_nonnegative(node: Any, where: str) -> None:
    """Every numeric weight (alpha, beta, eta, weight*, *_weight ...) in `node` must be >= 0."""
    for key, value in node.items():
        if isinstance(value, DictConfig):
            check_nonnegative(value, f"{where}.{key}")
        elif (is_weight_name(str(key)) and isinstance(value, (int, float))
              and not isinstance(value, bool) and value < 0):
            raise ConfigError(f"{where}.{key} must be >= 0 (a loss weight), got {value}")


def check_ranges(cfg: DictConfig) -> None:
    """Values with the right type but an impossible value."""
    t, d = cfg.trainer, cfg.dataset
    if cfg.weight_scale <= 0:
        raise ConfigError(f"weight_scale must be > 0, got {cfg.weight_scale}")
    if t.max_iters <= 0:
        raise ConfigError(f"trainer.max_iters must be > 0, got {t.max_iters}")
    if t.batch_size <= 0 or t.eval_batch_size <= 0:
        raise ConfigError("trainer.batch_size and trainer.eval_batch_size must be > 0")
    if t.lr <= 0:
        raise ConfigError(f"trainer.lr must be > 0, got {t.lr}")
    if t.checkpoint_every < 0 or t.log_every <= 0:
        raise ConfigError(f"trainer.checkpoint_every must be >= 0 and trainer.log_every > 0, got "
                          f"{t.checkpoint_every} and {t.log_every}")
    if t.momentum < 0 or t.lr_gamma <= 0 or t.head_lr_mult < 0:
        raise ConfigError("trainer.momentum and trainer.head_lr_mult must be >= 0, trainer.lr_gamma > 0")
    if t.weight_decay is not None and t.weight_decay < 0:
        raise ConfigError(f"trainer.weight_decay must be >= 0, got {t.weight_decay}")
    if not all(0 < m < 1 for m in t.lr_milestones):
        raise ConfigError(f"trainer.lr_milestones are fractions in (0, 1), got {list(t.lr_milestones)}")
    if not 0 < d.sample_rate <= 1:
        raise ConfigError(f"dataset.sample_rate must be in (0, 1], got {d.sample_rate}")
    if d.budget is not None and (d.budget < 1 or d.sample_rate != 1):
        raise ConfigError(f"dataset.budget={d.budget} (images per class) needs budget >= 1 and sample_rate 1 "
                          f"(got {d.sample_rate}): give one of the two")
    if d.image_size < cfg.backbone.min_image_size:
        raise ConfigError(
            f"dataset.image_size={d.image_size} is too small for backbone "
            f"{cfg.backbone.name}: use at least {cfg.backbone.min_image_size}")
    if cfg.disentangle is not None:
        check_disentangle(cfg.disentangle)
    if t.penalty_check not in PENALTY_CHECKS:
        raise ConfigError(f"trainer.penalty_check={t.penalty_check!r}; valid: {list(PENALTY_CHECKS)}")
    if t.kernels not in KERNEL_MODES:
        raise ConfigError(f"trainer.kernels={t.kernels!r}; valid: {', '.join(KERNEL_MODES)}")
    if t.device not in ("auto", "cpu") and not t.device.startswith("cuda"):
        raise ConfigError(f"trainer.device={t.device!r}; valid: auto, cpu, cuda, cuda:N")


def check_disentangle(dc: DictConfig) -> None:
    if dc.name not in METHODS:
        raise ConfigError(f"disentangle={dc.name!r}; valid: {sorted(METHODS)}")
    if dc.parts not in PARTS:
        raise ConfigError(f"disentangle.parts={dc.parts!r}; valid: {list(PARTS)}")
    if dc.epochs <= 0 or dc.batch_size < 2 or dc.lr <= 0 or dc.club_lr <= 0 or dc.club_steps < 1:
        raise ConfigError("disentangle.epochs, lr, club_lr and club_steps must be > 0 and batch_size >= 2")
    if min(dc.rec_weight, dc.mmd_weight, dc.mi_weight) < 0 or not dc.kernel_alphas or min(dc.kernel_alphas) <= 0:
        raise ConfigError("disentangle.rec_weight, mmd_weight, mi_weight must be >= 0 and kernel_alphas > 0")
    if dc.diagnostics_split not in DIAGNOSTIC_SPLITS:
        raise ConfigError(f"disentangle.diagnostics_split={dc.diagnostics_split!r}; valid: {list(DIAGNOSTIC_SPLITS)}")
    if dc.diagnostics_max_images is not None and dc.diagnostics_max_images < 1:
        raise ConfigError("disentangle.diagnostics_max_images must be >= 1 or null (all images)")
