"""Fine-tuning regularizers, picked by name from the `regularizer` config group.

Every module of this package except `base`, `functional` and `registry` is a method and is
imported here (`discover`), so there is no list of methods to keep. Adding a method touches:

1. `tred/regularizers/<name>.py`: a `Regularizer` subclass decorated with `@register("<name>")`
   (from `tred.regularizers.registry`), its `Config` dataclass holding every default, its
   formula and paper in the docstring, and `penalty` returning its terms by name;
2. `configs/regularizer/<name>.yaml`: `defaults: [/schema/regularizer/<name>@<name>]` (the
   defaults of `Config`, which tred.schema reads from the module's source) and `<name>:` with
   only what differs from them (values read from other groups, such as
   `layers: ${backbone.feature_layers}`);
3. `tests/test_<name>.py` (or a case in tests/test_functional.py): the formula against an
   independent computation.

Tables name it `<name>`; `tred/methods.py` gives it a display name and a place in the paper order
when it should have one. docs/adding.md walks through it, with a dataset and a backbone.
"""

from __future__ import annotations

import importlib
import pkgutil

from tred.regularizers.base import Regularizer, SetupContext, Step
from tred.regularizers.registry import REGISTRY, register

NOT_METHODS = ("base", "functional", "registry")


def discover() -> None:
    """Import every method module of this package (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in NOT_METHODS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def build_regularizers(cfg_regularizer) -> list[Regularizer]:
    return [REGISTRY[name](node) for name, node in cfg_regularizer.items()]


discover()

__all__ = ["REGISTRY", "Regularizer", "SetupContext", "Step", "build_regularizers", "discover", "register"]
