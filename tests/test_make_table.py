"""scripts/make_table.py: the files it writes (the renderers' text), the W&B table run, and
bad input: exit status 2 with the reason, nothing written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import wandb

from tests.fake_runs import REFUSALS, bad_sweep, rates_sweep, small_sweep
from tests.wandb_reader import history
from tred.tables.render import to_csv_frame, to_latex, to_markdown
from tred.tables.runs import TableError
from tred.tables.table import build_table

_spec = importlib.util.spec_from_file_location(
    "make_table", Path(__file__).resolve().parents[1] / "scripts" / "make_table.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
make_table = _mod.main


def test_writes_the_rendered_table(tmp_path):
    sweep = small_sweep(tmp_path / "sweep")
    assert make_table([str(sweep), "--no-plots"]) == 0
    t = build_table(sweep)
    assert (sweep / "table.md").read_text() == to_markdown(t)
    assert (sweep / "table.tex").read_text() == to_latex(t)
    assert (sweep / "table.csv").read_text() == to_csv_frame(t).to_csv(index=False)
    assert not (sweep / "plots").exists()


def test_against_passes_the_references_through(tmp_path, capsys):
    sweep = small_sweep(tmp_path / "sweep")
    assert make_table([str(sweep), "--no-plots", "--against", "l2sp"]) == 0
    assert (sweep / "table.md").read_text() == to_markdown(build_table(sweep, against=("l2sp",)))
    assert "| Δ vs L2-SP |" in (sweep / "table.md").read_text()
    (sweep / "table.md").unlink()
    assert make_table([str(sweep), "--no-plots", "--against", "delta"]) == 2  # not in this table
    assert "--against delta: no such method" in capsys.readouterr().err and not (sweep / "table.md").exists()


@pytest.mark.parametrize("kind", REFUSALS)
def test_refused_sweep_dir_writes_nothing(tmp_path, capsys, kind):
    """What each reason says is tests/test_tables_runs.py's; here: exit 2, the reason on stderr,
    and the previous table kept."""
    root = bad_sweep(tmp_path, kind)
    if root.is_dir():
        (root / "table.md").write_text("previous table")
    with pytest.raises(TableError) as reason:
        build_table(root)
    assert make_table([str(root)]) == 2
    assert capsys.readouterr().err == f"error: {reason.value}\n"
    if root.is_dir():
        assert (root / "table.md").read_text() == "previous table" and not (root / "table.csv").exists()
    else:
        assert not root.exists()


def test_wandb_logs_the_table_and_plots(tmp_path):
    root = rates_sweep(tmp_path / "sweep")
    assert make_table([str(root), "--wandb", "--wandb-mode", "offline"]) == 0
    wandb.teardown()  # flush the offline table run
    (run_file,) = root.glob("wandb/offline-run-*/run-*.wandb")
    (logged,) = history(run_file)
    assert logged["table/_type"] == "table-file" and logged["table/nrows"] == 2
    plots = ("accuracy_per_method", "accuracy_vs_sample_rate", "stage1_tred-max_mmd")
    assert all(logged[f"plots/{name}/_type"] == "image-file" for name in plots)
    rows = json.loads((run_file.parent / "files" / logged["table/path"]).read_text())["data"]
    assert [r[:2] for r in rows] == [["l2", "Fine-tune (L2)"], ["tred-max_mmd", "TRED Max-MMD"]]
