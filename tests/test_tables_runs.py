"""Reading a sweep directory (tred/tables/runs.py): the directories it refuses, the grid a sweep's
multirun.yaml declares, and the method each `method=<preset>` names."""

from __future__ import annotations

import pytest
import yaml

from tests.fake_runs import REFUSALS, bad_sweep, small_sweep
from tred.methods import CATALOGUE
from tred.tables.render import to_markdown
from tred.tables.runs import CONFIGS, TableError, load_runs, preset_method
from tred.tables.table import build_table


@pytest.mark.parametrize("kind", REFUSALS)
def test_refused_sweep_dirs(tmp_path, kind):
    """Empty, missing, corrupt, mixed (sweeps, experiments, an extra axis) or validation runs."""
    with pytest.raises(TableError, match=REFUSALS[kind]):
        load_runs(bad_sweep(tmp_path, kind))


def test_declared_sweep_lists_missing_methods(tmp_path):
    sweep = small_sweep(tmp_path / "sweep")
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"params": {"method": "finetune,l2sp,bss,tred_max_mmd", "dataset": "elpv,digits"}},
        "overrides": {"task": ["experiment=x", "seed=0,1,2"]}}}))
    t = build_table(sweep)
    assert t.grid.methods == ["l2", "l2sp", "bss", "tred-max_mmd"]
    assert t.columns == ["elpv", "digits"]  # the sweep's order
    assert (t.missing.method == "bss").sum() == 6
    assert "BSS | — | — | — | —" in to_markdown(t)


def test_method_presets_name_the_catalogued_methods():
    """Every configs/method preset selects the method the catalogue (tred.methods) gives it."""
    names = {p.stem: preset_method(p.stem) for p in (CONFIGS / "method").glob("*.yaml")}
    assert names == {m.preset: m.name for m in CATALOGUE}


def test_method_preset_composes():
    """`method=<preset>` composes with the other options and selects its regularizer."""
    from conftest import compose_cfg

    cfg = compose_cfg(["method=finetune", "disentangle=max_mmd"])
    assert list(cfg.regularizer) == ["l2"]
