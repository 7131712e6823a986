"""Generated sections of a markdown page (docs/results.md, the README's headline).

A section is the text between two marker lines,

    <!-- BEGIN generated: <name> (<the command that writes it>) -->
    ...
    <!-- END generated: <name> -->

and only a command writes it (`scripts/make_table.py <sweep> --into docs/results.md#<name>`,
`scripts/headline.py ... --into README.md#headline`), so no number on the page is typed by hand.
Everything outside the markers is prose and stays as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from tred.errors import TredError
from tred.io import atomic_write

BEGIN = "<!-- BEGIN generated: {name}"
END = "<!-- END generated: {name} -->"


class PageError(TredError):
    """The page or its section markers are missing."""


def parse_target(target: str) -> tuple[Path, str]:
    """`docs/results.md#embedded` -> (Path('docs/results.md'), 'embedded')."""
    path, sep, name = target.partition("#")
    if not sep or not name or not re.fullmatch(r"[\w.-]+", name):
        raise PageError(f"--into {target!r}: give PAGE#SECTION, e.g. docs/results.md#embedded")
    return Path(path), name


def _span(text: str, name: str, path: Path) -> tuple[int, int]:
    """Start and end offsets of the section's body (between the marker lines)."""
    begin = re.search(r"^" + re.escape(BEGIN.format(name=name)) + r"\b[^\n]*-->\n", text, re.M)
    end = re.search(r"^" + re.escape(END.format(name=name)) + r"$", text, re.M)
    if begin is None or end is None or end.start() < begin.end():
        raise PageError(f"{path} has no section {name!r}: add the lines `{BEGIN.format(name=name)} -->` and "
                        f"`{END.format(name=name)}` where it goes")
    return begin.end(), end.start()


def read_section(path: Path, name: str) -> str:
    text = Path(path).read_text()
    start, stop = _span(text, name, path)
    return text[start:stop]


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the section's body with `body` (atomically); the rest of the page is kept."""
    path = Path(path)
    if not path.is_file():
        raise PageError(f"{path} does not exist; create it with the section markers first")
    text = path.read_text()
    start, stop = _span(text, name, path)
    body = body if body.endswith("\n") else body + "\n"
    atomic_write(path, lambda fh: fh.write(text[:start] + body + text[stop:]))
