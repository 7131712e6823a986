"""Build the paper-style table (Markdown, CSV, LaTeX) and plots of a sweep directory.

    python scripts/make_table.py outputs/sweeps/mini_table [--wandb] [--strict] [--into docs/results.md#embedded]

Writes table.md, table.csv, table.tex and plots/*.png into the sweep directory and prints the
Markdown table; `--into PAGE#SECTION` also writes it into that generated section of a page
(tred/tables/page.py), with the command and the date the runs finished. Bad input (no runs, mixed
experiments or kernel settings, corrupt result.json, a page without the section) exits with
status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tred.errors import TredError
from tred.io import atomic_write
from tred.loggers import log_table
from tred.plots import all_plots
from tred.tables.page import parse_target, read_section, write_section
from tred.tables.render import missing_note, section_text, to_csv_frame, to_latex, to_markdown
from tred.tables.table import build_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", type=Path, help="a sweep directory, e.g. outputs/sweeps/mini_table")
    ap.add_argument("--digits", type=int, default=1, help="decimals shown in the table")
    ap.add_argument("--no-plots", action="store_true", help="only the table files")
    ap.add_argument("--against", nargs="+", default=[], metavar="METHOD",
                    help="also pair the TRED rows with these methods, e.g. tred-full (the same stage 2 "
                         "toward the whole source map: the difference is what the disentanglement adds)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any expected run is missing")
    ap.add_argument("--into", action="append", default=[], metavar="PAGE#SECTION",
                    help="also write the table into this generated section of a markdown page")
    ap.add_argument("--allow-mixed", action="store_true",
                    help="pool runs of different kernel settings (trainer.kernels, CPU code paths, threads)")
    ap.add_argument("--wandb", action="store_true", help="also log the table and plots to W&B")
    ap.add_argument("--wandb-project", default="tred")
    ap.add_argument("--wandb-entity", default=None)
    ap.add_argument("--wandb-mode", default=None, help="offline (default) | online; else WANDB_MODE")
    args = ap.parse_args(argv)
    try:
        table = build_table(args.sweep_dir, digits=args.digits, against=tuple(args.against),
                            allow_mixed=args.allow_mixed)
        targets = [parse_target(t) for t in args.into]
        for page, name in targets:  # every section exists before anything is written
            read_section(page, name)
    except TredError as exc:  # nothing has been written yet
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.sweep_dir
    md = to_markdown(table)
    frame = to_csv_frame(table)
    atomic_write(out / "table.md", lambda fh: fh.write(md))
    atomic_write(out / "table.tex", lambda fh: fh.write(to_latex(table)))
    atomic_write(out / "table.csv", lambda fh: frame.to_csv(fh, index=False))
    plots = [] if args.no_plots else all_plots(table, out, out / "plots")
    command = " ".join(["scripts/make_table.py", *map(str, argv if argv is not None else sys.argv[1:])])
    for page, name in targets:
        write_section(page, name, section_text(table, md, command))
        print(f"wrote section {name!r} of {page}")
    print(md)
    plotted = f" and {len(plots)} plots in {out / 'plots'}" if plots else ""
    print(f"wrote {out / 'table.md'}, table.csv, table.tex{plotted}")
    if not table.missing.empty:
        print(f"warning: {missing_note(table)}", file=sys.stderr)
        for _, r in table.missing.iterrows():
            print(f"  {r.method} {r.dataset} sr{r.sample_rate:g} seed{r.seed}: {r.reason}"
                  + (f" ({r.run_dir})" if r.run_dir else ""), file=sys.stderr)
    if args.wandb:
        log_table(frame, plots, str(table.runs["sweep"].iloc[0]), out, args.wandb_project,
                  args.wandb_entity, args.wandb_mode)
        offline = sorted(out.rglob("offline-run-*"))
        if offline:
            print(f"{len(offline)} W&B offline runs (training runs and the table) under {out}; upload them with:\n"
                  f"  wandb login && wandb sync $(find {out} -type d -name 'offline-run-*')")
    return 1 if args.strict and not table.missing.empty else 0


if __name__ == "__main__":
    sys.exit(main())
