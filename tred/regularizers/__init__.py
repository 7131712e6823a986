"""Fine-tuning regularizers, picked by name from the `regularizer` config group.

Adding a method = one module that defines a `Regularizer` subclass decorated with
`@register("name")` + one yaml file in configs/regularizer/ + one test.
"""

from __future__ import annotations

import importlib

from tred.regularizers.base import Regularizer, SetupContext, Step

REGISTRY: dict[str, type[Regularizer]] = {}
_MODULES = ("l2", "l2sp", "at", "delta", "bss", "tred")


def register(name: str):
    def wrap(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return wrap


for _m in _MODULES:
    try:
        importlib.import_module(f"tred.regularizers.{_m}")
    except ModuleNotFoundError as exc:  # a method not written yet
        if exc.name != f"tred.regularizers.{_m}":
            raise


def build_regularizers(cfg_regularizer, cfg_backbone) -> list[Regularizer]:
    return [REGISTRY[name](node, cfg_backbone) for name, node in cfg_regularizer.items()]


__all__ = ["REGISTRY", "Regularizer", "SetupContext", "Step", "register", "build_regularizers"]
