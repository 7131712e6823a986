"""Config schemas: the composed Hydra config is checked against them before any work starts.

Each group option is merged into its dataclass, so an unknown key or a value of the wrong type
raises a `ConfigError` naming the key. Regularizers bring their own schema (`Regularizer.Config`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tred.errors import ConfigError
from tred.methods import method_name


@dataclass
class AugmentConfig:
    crop_padding: int = 0
    hflip: bool = False


@dataclass
class DatasetConfig:
    name: str = "digits"
    # null: taken from the data (image_folder); otherwise checked against it.
    num_classes: Optional[int] = 10
    image_size: int = 32
    # Embedded datasets: images per class in the training split (the rest is the test pool).
    train_per_class: Optional[int] = None
    test_per_class: Optional[int] = None
    split_seed: int = 0
    # Seeded splits without train_per_class (caltech256 test pool, image_folder): test share.
    test_fraction: float = 0.3
    sample_rate: float = 1.0
    # Hyperparameter tuning: train on (1 - val_fraction) of the training split and report
    # accuracy on the held-out rest (result.json `eval_split: val`); the test split is not read.
    validation: bool = False
    val_fraction: float = 0.3
    # Where the validation images come from: "subset" (val_fraction of the training subset) or
    # "unused" (the training images the sample_rate subset leaves out; training set unchanged).
    val_pool: str = "subset"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # On-disk datasets (paper scale).
    root: Optional[str] = None
    download: bool = False
    resize: Optional[int] = None
    keep_aspect: bool = False
    # Decode every image once into memory at `resize` px (uint8), crop on tensors: for
    # CPU-sized benchmarks; off streams from disk through DataLoader workers (paper scale).
    in_memory: bool = False


@dataclass
class BackboneConfig:
    name: str = "efficientnet_lite0"
    arch: str = "tf_efficientnet_lite0"
    pretrained: Any = "embedded"
    mean: list = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list = field(default_factory=lambda: [0.5, 0.5, 0.5])
    min_image_size: int = 32
    feature_layers: list = field(default_factory=list)
    final_layer: str = ""


@dataclass
class DisentangleConfig:
    """TRED stage 1 (docs/tred.md); configs/disentangle/*.yaml pick `name` and take the rest from here.

    loss = CE(h_r(pool z_r), y) + rec_weight * mean (z_r + z_i - z)^2 - mmd_weight * MMD^2 + mi_weight * I_CLUB
    (tred/stage1/disentangle.py; `name` selects which separation terms enter the loss).
    """

    # max_mmd | min_mi | max_mmd_min_mi: the separation term(s).
    name: str = "max_mmd_min_mi"
    # branches: z_r = E_r(z), z_i = E_i(z), tied to z by the reconstruction term (docs/tred.md);
    # mask: z_r = sigmoid(E_r(z)) * z, z_i = z - z_r, a split of z by construction (docs/tred.md).
    # projection: z_r = P z, P onto the span of the class-mean features, z_i = z - z_r (closed form).
    parts: str = "branches"
    # Adam on the disentangler (E_r, E_i, h_r of each TRED layer); source backbone frozen, eval mode.
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    # false: source feature maps of the un-augmented training set computed once and reused every epoch;
    # true: fresh augmented batches (dataset.augment) through the source every step (slower).
    augment: bool = False
    rec_weight: float = 1.0
    # Divide the reconstruction error by mean z^2 (scale-free, as the reference gap is).
    rec_normalize: bool = False
    # tie_weight * mean (z_r - z)^2 / mean z^2: keeps the reference near the source map.
    tie_weight: float = 0.0
    # Weight of -MMD^2 (used by max_mmd and max_mmd_min_mi; the value is logged for every method).
    mmd_weight: float = 1.0
    # Weight of +I_CLUB (used by min_mi and max_mmd_min_mi; the CLUB is fitted as a monitor for every method).
    mi_weight: float = 0.01
    # Gaussian kernel bandwidths sigma^2 = a * mean pairwise squared distance of the joint batch.
    kernel_alphas: list = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0, 2.0])
    # CLUB's q(z_i | z_r): MLP hidden size, its own Adam lr, its steps per disentangler step,
    # soft bound on its log-variance (logvar = limit * tanh(raw / limit)).
    club_hidden: int = 256
    club_lr: float = 1e-3
    club_steps: int = 1
    club_logvar_limit: float = 5.0
    # Linear probe on the full pooled source feature (diagnostic): full-batch Adam steps and lr.
    probe_steps: int = 200
    probe_lr: float = 0.01
    # Split on which the relevant head and the probe are scored (reported only, never used to choose).
    diagnostics_split: str = "test"
    # Score on the first N images of that split (null: all); bounds the cost of the source forward.
    diagnostics_max_images: Optional[int] = 1024


@dataclass
class LoggerConfig:
    name: str = "csv"
    project: str = "tred"
    entity: Optional[str] = None
    mode: str = "offline"
    tags: list = field(default_factory=list)


@dataclass
class TrainerConfig:
    max_iters: int = 300
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: Optional[float] = None
    lr_milestones: list = field(default_factory=lambda: [0.6667])
    lr_gamma: float = 0.1
    head_lr_mult: float = 1.0
    eval_batch_size: int = 256
    num_workers: int = 0
    device: str = "auto"
    log_every: int = 25
    threads: Optional[int] = None
    deterministic: bool = True
    # Iterations between checkpoints (0: only at stage ends, on SIGTERM/SIGINT and at the end).
    checkpoint_every: int = 500
    # Keep checkpoint.pt (the final weights) after a completed run; off: deleted to save disk.
    keep_checkpoint: bool = False
    # Mixed precision on CUDA (bf16, else fp16 + grad scaler); CPU always runs float32.
    amp: bool = True
    # Tensors in channels_last memory format; null: on CUDA only.
    channels_last: Optional[bool] = None
    # A regularizer term >= 100x the cross-entropy at the first step: warn (log, result.json), error (stop), off.
    penalty_check: str = "warn"


@dataclass
class TopConfig:
    """Keys at the root of train.yaml (the groups are checked one by one)."""

    seed: int = 0
    sweep_name: str = "default"
    cache_dir: str = "outputs/cache"
    resume: str = "auto"
    run_name: str = ""
    # Another process holds the run directory: 0 refuse at once, >0 wait that many seconds, <0 for ever.
    lock_wait_s: float = 0.0
    # Keys merged into each *selected* regularizer only (per-dataset weights of the paper
    # experiments, e.g. {delta: {alpha: 0.1}}); the others ignore them.
    regularizer_overrides: Any = field(default_factory=dict)
    # Multiplies the main weight (`Regularizer.weight_key`) of every selected regularizer, after
    # the overrides: one relative grid (e.g. 1e-3 ... 1) turns every method's weight alike.
    weight_scale: float = 1.0
    # How the regularizer weights were chosen, printed in the tables' caption (set by the
    # configs/tuned/*.yaml files that scripts/tune_summary.py writes); not part of a run's identity.
    weights_note: str = ""


GROUP_SCHEMAS = {
    "dataset": DatasetConfig,
    "backbone": BackboneConfig,
    "disentangle": DisentangleConfig,
    "logger": LoggerConfig,
    "trainer": TrainerConfig,
}
RESUME_MODES = ("auto", "never")
PENALTY_CHECKS = ("error", "warn", "off")


def _merge(schema: type, node: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None)
        at = f"{where}.{key}" if key and where != "<root>" else (key or where)
        raise ConfigError(f"invalid config at `{at}`: {msg}") from None


def _explicit_keys(overrides) -> set[str]:
    """`regularizer.tred.alpha` from `regularizer.tred.alpha=1e-3` (also `+key=`, `++key=`)."""
    return {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}


def check_overrides(overrides) -> None:
    """What the composed config can no longer show: Hydra merges a group option listed twice
    (`regularizer=[l2sp,l2sp]` composes to one l2sp), so a repeated regularizer is refused here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in overrides:
        try:
            (ov,) = parser.parse_overrides([str(text)])
        except Exception:  # noqa: BLE001 - not ours to report: Hydra rejects a malformed override itself
            continue
        if ov.key_or_group != "regularizer" or ov.is_sweep_override() or not isinstance(ov.value(), list):
            continue
        names = [str(v) for v in ov.value()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"{text} names {', '.join(f'`{n}`' for n in twice)} more than once; list each regularizer "
                f"once (a term's strength is its weight, e.g. regularizer.{twice[0]}.<weight>)")


def validate(cfg: DictConfig, explicit=()) -> DictConfig:
    """Return a validated copy of `cfg` (defaults filled in) or raise `ConfigError`.

    `regularizer_overrides` (an experiment's values for the regularizers a run selects) fill
    `regularizer.<name>.<key>` unless `explicit` (the run's command-line and sweep overrides,
    `key=value` strings) sets that key: what the user typed wins.
    """
    from tred.regularizers import REGISTRY  # late: regularizers import this module's errors

    check_overrides(explicit)
    raw = OmegaConf.to_container(cfg, resolve=True)
    plain = lambda node: OmegaConf.to_container(node)  # noqa: E731
    top = {k: v for k, v in raw.items() if k not in GROUP_SCHEMAS and k != "regularizer"}
    typed = _explicit_keys(explicit)
    extra = {name: {k: v for k, v in (values or {}).items() if f"regularizer.{name}.{k}" not in typed}
             for name, values in (raw.get("regularizer_overrides") or {}).items()}
    out = plain(_merge(TopConfig, top, "<root>"))
    for group, schema in GROUP_SCHEMAS.items():
        if group not in raw:
            raise ConfigError(f"the config has no `{group}` group; add one to configs/train.yaml")
        out[group] = plain(_merge(schema, raw[group], group))
    regs = raw.get("regularizer")
    if not regs:
        raise ConfigError(
            f"no regularizer selected; pick one or more of {sorted(REGISTRY)}, "
            "e.g. regularizer=l2 or regularizer=[l2sp,bss]")
    out["regularizer"] = {}
    for name, node in regs.items():
        if name not in REGISTRY:
            raise ConfigError(f"unknown regularizer `{name}`; valid: {sorted(REGISTRY)}")
        node = OmegaConf.merge(node or {}, extra.get(name) or {})
        out["regularizer"][name] = plain(_merge(REGISTRY[name].Config, node, f"regularizer.{name}"))
        key = REGISTRY[name].weight_key
        if key is not None and out["weight_scale"] != 1.0:
            scaled = out["regularizer"][name][key] * out["weight_scale"]
            out["regularizer"][name][key] = float(f"{scaled:.12g}")  # 1e-2 * 1e-3 = 1e-05, not 1.0000000000000001e-05
    out.pop("regularizer_overrides", None)  # merged into the selected regularizers above
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
    if d.image_size < cfg.backbone.min_image_size:
        raise ConfigError(
            f"dataset.image_size={d.image_size} is too small for backbone "
            f"{cfg.backbone.name}: use at least {cfg.backbone.min_image_size}")
    if cfg.disentangle is not None:
        check_disentangle(cfg.disentangle)
    if t.penalty_check not in PENALTY_CHECKS:
        raise ConfigError(f"trainer.penalty_check={t.penalty_check!r}; valid: {list(PENALTY_CHECKS)}")
    if t.device not in ("auto", "cpu") and not t.device.startswith("cuda"):
        raise ConfigError(f"trainer.device={t.device!r}; valid: auto, cpu, cuda, cuda:N")


def check_disentangle(dc: DictConfig) -> None:
    from tred.stage1.disentangler import PARTS  # late: imports torch
    from tred.stage1.disentangle import DIAGNOSTIC_SPLITS, METHODS

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


def schema_defaults() -> dict:
    """Every schema key with its default, as a nested dict (top level and groups)."""
    out = OmegaConf.to_container(OmegaConf.structured(TopConfig))
    for group, schema in GROUP_SCHEMAS.items():
        out[group] = OmegaConf.to_container(OmegaConf.structured(schema))
    return out


def threads_per_job() -> Optional[int]:
    """CPU threads per job when a launcher runs `n_jobs` jobs side by side (joblib), else None
    (torch's default). Splitting the cores avoids oversubscription."""
    from hydra.core.hydra_config import HydraConfig

    try:
        n_jobs = HydraConfig.get().launcher.get("n_jobs")
    except ValueError:  # no Hydra app running (tests, notebooks)
        return None
    if n_jobs is None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // (cores if n_jobs < 0 else n_jobs))


# Structured configs that the yaml files of a group extend (`defaults: [<name>, _self_]`), so that
# each default is written once, in its dataclass.
SCHEMA_OPTIONS = {("disentangle", "base_disentangle"): DisentangleConfig}


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore (before any compose)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for (group, name), schema in SCHEMA_OPTIONS.items():
        cs.store(group=group, name=name, node=schema)


def register_resolvers() -> None:
    """The resolvers of configs/ (`method_name`, `threads_per_job`) and the schemas they extend:
    what any caller of Hydra's compose (scripts/train.py, the tests, scripts/) needs first."""
    register_schemas()
    if not OmegaConf.has_resolver("method_name"):
        OmegaConf.register_new_resolver("method_name", method_name)
    if not OmegaConf.has_resolver("threads_per_job"):
        OmegaConf.register_new_resolver("threads_per_job", threads_per_job)
