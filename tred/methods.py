"""The method catalogue: each method's name, display name, place in the paper's order and preset.

A method's *name* (run directories, result.json `method`, table rows) is worked out from a run's
config by `method_name` only: the selected regularizers joined by `+`, TRED spelled with its
stage-1 separation (`tred-max_mmd`) and, when `disentangle.parts` is not `branches`, its split
(`tred-mask-max_mmd`). `CATALOGUE` lists the methods of the paper's tables in order; a method
that is not in it (a new regularizer, a combination `l2sp+bss`) still runs and is tabulated,
under its name, after the catalogued ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str      # method_name(...) of its runs
    display: str   # row label of the tables
    preset: str    # configs/method/<preset>.yaml: the `method` axis of the table sweeps


CATALOGUE = (
    Method("l2", "Fine-tune (L2)", "finetune"),
    Method("l2sp", "L2-SP", "l2sp"),
    Method("at", "AT", "at"),
    Method("delta", "DELTA", "delta"),
    Method("bss", "BSS", "bss"),
    Method("tred-max_mmd", "TRED Max-MMD", "tred_max_mmd"),
    Method("tred-min_mi", "TRED Min-MI", "tred_min_mi"),
    Method("tred-max_mmd_min_mi", "TRED Max-MMD+Min-MI", "tred_max_mmd_min_mi"),
    Method("tred-mask-max_mmd", "TRED-mask Max-MMD", "tred_mask_max_mmd"),
    Method("tred-mask-min_mi", "TRED-mask Min-MI", "tred_mask_min_mi"),
    Method("tred-mask-max_mmd_min_mi", "TRED-mask Max-MMD+Min-MI", "tred_mask_max_mmd_min_mi"),
)
FINETUNE = "l2"  # the baseline every gain is measured against
PAPER_ORDER = tuple(m.name for m in CATALOGUE)
DISPLAY = {m.name: m.display for m in CATALOGUE}
BY_PRESET = {m.preset: m for m in CATALOGUE}


def method_name(regularizer: Any, disentangle: Any = None, parts: Any = None) -> str:
    """Name of a method for run directories and tables: `l2sp+bss`, `tred-max_mmd`, and
    `tred-mask-max_mmd` when `disentangle.parts` is not the default `branches`.

    `regularizer`: the selected regularizers (a mapping or list of names, or one name);
    `disentangle`, `parts`: TRED's `disentangle.name` and `disentangle.parts` (ignored without tred).
    """
    if isinstance(regularizer, str):
        names = [r.strip() for r in regularizer.strip("[]").split(",") if r.strip()]
    else:
        names = list(regularizer.keys()) if hasattr(regularizer, "keys") else [str(r) for r in regularizer]
    tred = f"tred-{disentangle}" if parts in (None, "branches") else f"tred-{parts}-{disentangle}"
    return "+".join(tred if (n == "tred" and disentangle) else n for n in names)


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
