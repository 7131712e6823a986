"""Generated page sections (tred/tables/page.py): `make_table.py --into` and `headline.py --into`
write exactly what the table tool renders from the sweep, between the markers, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fake_runs import paired_sweep, write_run
from tred.tables.headline import Column
from tred.tables.headline import to_markdown as headline_markdown
from tred.tables.page import PageError, read_section, write_section
from tred.tables.render import section_text, to_markdown
from tred.tables.table import build_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import headline  # noqa: E402
import make_table  # noqa: E402

PAGE = """# Results

Prose before.

<!-- BEGIN generated: flowers (scripts/make_table.py) -->
old numbers
<!-- END generated: flowers -->

Prose after, kept.
"""


def page(tmp_path: Path) -> Path:
    path = tmp_path / "results.md"
    path.write_text(PAGE)
    return path


def test_make_table_into_writes_the_rendered_table_between_the_markers(tmp_path):
    sweep, path = paired_sweep(tmp_path / "s"), page(tmp_path)
    argv = [str(sweep), "--no-plots", "--into", f"{path}#flowers"]
    assert make_table.main(argv) == 0
    table = build_table(sweep)
    expected = section_text(table, to_markdown(table), "scripts/make_table.py " + " ".join(argv))
    assert read_section(path, "flowers") == expected
    text = path.read_text()
    assert text.startswith("# Results\n\nProse before.\n\n<!-- BEGIN generated: flowers") and \
        text.endswith("<!-- END generated: flowers -->\n\nProse after, kept.\n")
    assert "old numbers" not in text and "| L2-SP |" in text
    assert "from 11 runs, the last run finished " in expected  # 12 runs, one failed


def test_a_missing_section_writes_nothing(tmp_path, capsys):
    sweep, path = paired_sweep(tmp_path / "s"), page(tmp_path)
    assert make_table.main([str(sweep), "--no-plots", "--into", f"{path}#embedded"]) == 2
    assert "has no section 'embedded'" in capsys.readouterr().err
    assert path.read_text() == PAGE and not (sweep / "table.md").exists()
    with pytest.raises(PageError, match="has no section 'embedded'"):
        write_section(path, "embedded", "x")
    assert make_table.main([str(sweep), "--no-plots", "--into", str(path)]) == 2
    assert "give PAGE#SECTION" in capsys.readouterr().err


def budget_sweep(root: Path, finetune, delta) -> Path:
    for seed, (a, b) in enumerate(zip(finetune, delta)):
        write_run(root, "l2", "flowers102", seed, a)
        write_run(root, "delta", "flowers102", seed, b, reg={"delta": {"alpha": 1e-4, "beta": 0.01}})
    return root


def test_headline_pairs_each_budget_with_fine_tuning(tmp_path):
    five = budget_sweep(tmp_path / "five", [60.0, 62.0, 64.0], [61.0, 65.0, 66.0])  # d = 1, 3, 2
    ten = budget_sweep(tmp_path / "ten", [70.0, 71.0, 72.0], [74.0, 75.0, 77.0])  # d = 4, 4, 5
    path = page(tmp_path)
    path.write_text(PAGE.replace("flowers", "headline"))
    argv = [f"5 per class={five}", f"10 per class={ten}", "--into", f"{path}#headline",
            "--figure", str(tmp_path / "h.png")]
    assert headline.main(argv) == 0
    body = read_section(path, "headline")
    # by hand: mean 2, sd 1, t(0.975, 2) = 4.303 -> +-2.48; mean 4.33, sd 0.577 -> +-1.43
    assert "| Fine-tune (L2), accuracy % | 62.0 | 71.0 |" in body
    assert "| DELTA | +2.0 [-0.5, +4.5] | +4.3 [+2.9, +5.8] ↑ |" in body
    columns = [Column("5 per class", build_table(five)), Column("10 per class", build_table(ten))]
    assert body.endswith(headline_markdown(columns))
    assert (tmp_path / "h.png").stat().st_size > 10_000
    assert headline.main(["no-label-here"]) == 2
