"""The README's headline table and figure, from sweep directories (tred/tables/headline.py).

    python scripts/headline.py "5 per class=outputs/benchmark/flowers102/5pc/table" \\
        "10 per class=outputs/benchmark/flowers102/10pc/table" --into README.md#headline \\
        --figure docs/figures/headline.png --title "Flowers-102"

Prints the compact table (each method's paired difference to fine-tuning per sweep, with its
95% interval) and, with `--into PAGE#SECTION`, writes it into that generated section of a page
(tred/tables/page.py); `--figure` draws the same numbers. Bad input exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tred.errors import TredError
from tred.tables.headline import Column, figure, to_markdown
from tred.tables.page import parse_target, read_section, write_section
from tred.tables.render import generated_line
from tred.tables.table import build_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="+", metavar="LABEL=SWEEP_DIR")
    ap.add_argument("--into", default=None, metavar="PAGE#SECTION")
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--title", default="Paired difference to fine-tuning")
    ap.add_argument("--out", type=Path, default=None, help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)
    try:
        columns = []
        for item in args.sweeps:
            label, sep, sweep = item.partition("=")
            if not sep or not label or not sweep:
                raise TredError(f"{item!r}: give LABEL=SWEEP_DIR, e.g. "
                                "'5 per class=outputs/benchmark/flowers102/5pc/table'")
            columns.append(Column(label, build_table(sweep)))
        target = parse_target(args.into) if args.into else None
        if target:
            read_section(*target)
    except TredError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md = to_markdown(columns)
    print(md)
    command = " ".join(["scripts/headline.py", *(f"'{a}'" if " " in a else a for a in
                                                 (argv if argv is not None else sys.argv[1:]))])
    if args.figure:
        figure(columns, args.figure, args.title)
        print(f"wrote {args.figure}")
    body = f"{generated_line(command, [c.table for c in columns])}\n\n{md}"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(body)
        print(f"wrote {args.out}")
    if target:
        write_section(*target, body)
        print(f"wrote section {target[1]!r} of {target[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
