"""The registry finds a method from its module alone (tred/regularizers/__init__.py, docs/adding.md)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import tred.regularizers as regularizers
from conftest import compose_cfg
from tred.config import validate
from tred.regularizers import REGISTRY, Step, build_regularizers
from tred.schema import METHODS_DIR, method_defaults

TRIVIAL = '''
"""A trivial method for the test: weight * mean(logits^2)."""
from dataclasses import dataclass

from tred.regularizers.base import Regularizer
from tred.regularizers.registry import register


@register("trivial")
class Trivial(Regularizer):
    weight_key = "weight"

    @dataclass
    class Config:
        weight: float = 0.5

    def penalty(self, step):
        return {"trivial": self.cfg.weight * step.logits.pow(2).mean()}
'''


@pytest.fixture
def trivial_module(tmp_path, monkeypatch):
    """`tred/regularizers/trivial.py`, without editing the repository: a second package path."""
    (tmp_path / "trivial.py").write_text(textwrap.dedent(TRIVIAL))
    monkeypatch.setattr(regularizers, "__path__", [*regularizers.__path__, str(tmp_path)])
    monkeypatch.delitem(REGISTRY, "trivial", raising=False)
    yield
    REGISTRY.pop("trivial", None)
    sys.modules.pop("tred.regularizers.trivial", None)


def test_a_new_module_is_discovered_validated_and_built(trivial_module, tmp_path):
    regularizers.discover()
    assert "trivial" in REGISTRY
    assert method_defaults(tmp_path) == {"trivial": {"weight": 0.5}}  # what Hydra gets from the source
    # No yaml: the method is selected by its key alone; its Config fills the defaults.
    cfg = validate(compose_cfg(["+regularizer.trivial={}", "~regularizer.l2"]),
                   ["+regularizer.trivial={}"])
    assert dict(cfg.regularizer) == {"trivial": {"weight": 0.5}}
    (reg,) = build_regularizers(cfg.regularizer)
    logits = torch.tensor([[1.0, -3.0]])
    terms = reg.penalty(Step(model=None, logits=logits, labels=torch.tensor([0]), features=logits))
    assert float(terms["trivial"]) == pytest.approx(0.5 * (1 + 9) / 2)


def test_every_package_module_but_the_shared_ones_is_a_method():
    names = {cls.__module__.rsplit(".", 1)[1] for cls in REGISTRY.values()}
    assert {"l2", "l2sp", "at", "delta", "bss", "tred"} <= names
    assert not names & set(regularizers.NOT_METHODS)


def test_hydra_gets_each_methods_defaults_from_its_config():
    """tred.schema reads the `Config` defaults from the module sources (composing a config does
    not import torch): the same values as the imported dataclasses, for every method here."""
    found = method_defaults()
    here = {n for n, cls in REGISTRY.items() if Path(sys.modules[cls.__module__].__file__).parent == METHODS_DIR}
    assert set(found) == here
    for name in found:
        assert found[name] == OmegaConf.to_container(OmegaConf.structured(REGISTRY[name].Config)), name
