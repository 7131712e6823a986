"""The method catalogue: each method's name, display name, place in the paper's order and preset.

A method's *name* (run directories, result.json `method`, table rows) is worked out from a run's
config by `method_name` only: the selected regularizers joined by `+`, TRED spelled with its
stage-1 separation (`tred-max_mmd`) and, when `disentangle.parts` is not `branches`, its split
(`tred-mask-max_mmd`; `tred-projection` for the closed-form split, which has no separation
term); TRED's stage 2 toward the whole source map (`regularizer.tred.reference=full`,
no disentangler: the control that says whether the disentanglement helps) is `tred-full`. `CATALOGUE`
lists the methods of the paper's tables in order; a method that is not in it (a new regularizer,
a combination `l2sp+bss`) still runs and is tabulated, under its name, after the catalogued ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str      # method_name(...) of its runs
    display: str   # row label of the tables
    preset: str    # configs/method/<preset>.yaml: the `method` axis of the table sweeps
    baseline: bool = False  # a published regularizer TRED is compared with (not fine-tuning itself)


CATALOGUE = (
    Method("l2", "Fine-tune (L2)", "finetune"),
    Method("l2sp", "L2-SP", "l2sp", baseline=True),
    Method("at", "AT", "at", baseline=True),
    Method("delta", "DELTA", "delta", baseline=True),
    Method("bss", "BSS", "bss", baseline=True),
    Method("tred-max_mmd", "TRED Max-MMD", "tred_max_mmd"),
    Method("tred-min_mi", "TRED Min-MI", "tred_min_mi"),
    Method("tred-max_mmd_min_mi", "TRED Max-MMD+Min-MI", "tred_max_mmd_min_mi"),
    Method("tred-full", "TRED-full (no disentangler)", "tred_full"),
    Method("tred-mask-max_mmd", "TRED-mask Max-MMD", "tred_mask_max_mmd"),
    Method("tred-mask-min_mi", "TRED-mask Min-MI", "tred_mask_min_mi"),
    Method("tred-mask-max_mmd_min_mi", "TRED-mask Max-MMD+Min-MI", "tred_mask_max_mmd_min_mi"),
    Method("tred-projection", "TRED-projection (class-mean split)", "tred_projection"),
)
FINETUNE = "l2"  # the baseline every gain is measured against
PAPER_ORDER = tuple(m.name for m in CATALOGUE)
DISPLAY = {m.name: m.display for m in CATALOGUE}
BY_PRESET = {m.preset: m for m in CATALOGUE}
BASELINES = tuple(m.name for m in CATALOGUE if m.baseline)


def is_tred(method: str) -> bool:
    return any(part.startswith("tred") for part in method.split("+"))


def method_name(regularizer: Any, disentangle: Any = None, parts: Any = None, reference: Any = None) -> str:
    """Name of a method for run directories and tables: `l2sp+bss`, `tred-max_mmd`,
    `tred-mask-max_mmd` when `disentangle.parts` is not the default `branches`, `tred-projection`
    for the closed-form split (no separation term, so none in the name), and `tred-full` when TRED
    regularizes toward the whole source map (no disentangler).

    `regularizer`: the selected regularizers (a mapping of their settings, a list of names, or one
    name); `disentangle`, `parts`: TRED's `disentangle.name` and `disentangle.parts`; `reference`:
    `regularizer.tred.reference`, read from the mapping when not given (all ignored without tred).
    """
    if isinstance(regularizer, str):
        names = [r.strip() for r in regularizer.strip("[]").split(",") if r.strip()]
    else:
        names = list(regularizer.keys()) if hasattr(regularizer, "keys") else [str(r) for r in regularizer]
    if reference is None and hasattr(regularizer, "keys") and "tred" in names:
        reference = (regularizer["tred"] or {}).get("reference")
    if reference == "full":
        tred = "tred-full"
    elif parts == "projection":  # nothing is trained by the separation terms: no name for them
        tred = "tred-projection"
    else:
        tred = f"tred-{disentangle}" if parts in (None, "branches") else f"tred-{parts}-{disentangle}"
    named = disentangle or reference == "full" or parts == "projection"
    return "+".join(tred if (n == "tred" and named) else n for n in names)


def method_of_config(cfg: dict) -> str:
    """The method name of a run's saved (validated) config."""
    dis = cfg.get("disentangle")
    return method_name(cfg["regularizer"], dis["name"] if dis else None, dis.get("parts") if dis else None)


def display_name(method: str) -> str:
    return " + ".join(DISPLAY.get(part, part) for part in method.split("+"))


def method_order(methods) -> list[str]:
    """The catalogued methods in the paper's order, then the others by name."""
    known = [m for m in PAPER_ORDER if m in methods]
    return known + sorted(set(methods) - set(known))
