"""The committed pages' generated sections (README.md's headline, docs/results.md's tables and tuning scores) are
exactly what their own commands render from the committed run records (outputs/records), so no
number on them is typed by hand or left behind when the records change."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import headline  # noqa: E402
import make_table  # noqa: E402
import tune_summary  # noqa: E402

from tred.tables.page import read_section  # noqa: E402

PAGES = ("README.md", "docs/results.md")
MARKER = re.compile(r"^<!-- BEGIN generated: ([\w.-]+) \((.*)\) -->$", re.M)
SCRIPTS = {"scripts/make_table.py": make_table.main, "scripts/headline.py": headline.main,
           "scripts/tune_summary.py": tune_summary.main}


def sections() -> list[tuple[str, str, str]]:
    return [(page, name, command) for page in PAGES
            for name, command in MARKER.findall((ROOT / page).read_text())]


def test_the_pages_have_generated_sections():
    assert ("docs/results.md", "embedded") in {(p, n) for p, n, _ in sections()}


@pytest.mark.parametrize("page,name,command", sections(), ids=lambda v: str(v)[:40])
def test_a_generated_section_is_what_its_command_renders_from_the_records(page, name, command, tmp_path,
                                                                          monkeypatch):
    script, *argv = shlex.split(command)
    assert script in SCRIPTS, f"{page}#{name}: written by {script}, which this test does not know"
    sweeps = [a.partition("=")[2] if script.endswith("headline.py") else a for a in argv
              if not a.startswith("-") and ("outputs/" in a)]
    assert sweeps and all(s.startswith("outputs/records/") for s in sweeps), \
        f"{page}#{name}: made from {sweeps}, not from committed records (scripts/archive_runs.py)"
    for sweep in sweeps:  # a copy: the command also writes table files next to the runs
        shutil.copytree(ROOT / sweep, tmp_path / sweep)
    (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / page, tmp_path / page)
    monkeypatch.chdir(tmp_path)
    assert SCRIPTS[script](argv) == 0
    assert read_section(tmp_path / page, name) == read_section(ROOT / page, name)
