"""The regularizer registry: a module of its own, so method modules register themselves with
`@register("name")` without importing the package `__init__` (which discovers them)."""

from __future__ import annotations

REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: `name` selects the class as `regularizer=<name>`."""
    def wrap(cls):
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"two regularizers are registered as `{name}`: {REGISTRY[name]} and {cls}")
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return wrap
