"""Feature maps of named layers, captured with forward hooks."""

from __future__ import annotations

from torch import nn

from tred.errors import ConfigError


def suggested_layers(body: nn.Module) -> list[str]:
    """Names worth hooking: top-level children and the stages/blocks one level below."""
    names = []
    for name, child in body.named_children():
        names.append(name)
        if isinstance(child, nn.Sequential):
            names += [f"{name}.{sub}" for sub, _ in child.named_children()]
    return names


def resolve_layers(body: nn.Module, names) -> dict[str, nn.Module]:
    modules = dict(body.named_modules())
    bad = [n for n in names if n not in modules or n == ""]
    if bad:
        raise ConfigError(f"unknown layer name(s) {bad} for {type(body).__name__}; "
                          f"valid names include: {suggested_layers(body)}")
    return {n: modules[n] for n in names}


class FeatureTaps:
    """Keeps the latest output of each named layer in `self.maps` (hooks stay until `close`)."""

    def __init__(self, body: nn.Module, names):
        self.maps: dict = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in resolve_layers(body, names).items()]

    def _hook(self, name):
        def store(_module, _inp, out):
            self.maps[name] = out
        return store

    def pop(self) -> dict:
        maps, self.maps = self.maps, {}
        return maps

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
