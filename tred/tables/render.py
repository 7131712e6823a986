"""A `Table` as text: markdown, LaTeX (booktabs), the csv / W&B frame, and its captions and notes.

With the main table (under it in markdown, as `%` comments above it in LaTeX): the caption, the
weights each method ran with, the missing runs, the runs with a health warning (their cells
carry `!`), threads and versions, and what the runs cost; then one block per set of paired
differences (vs fine-tuning; the TRED rows vs the best baseline), each with its caption. Row
labels are `tred.methods.display_name`.
"""

from __future__ import annotations

import math

import pandas as pd

from tred.methods import FINETUNE, display_name, is_tred, method_order
from tred.tables.stats import BETTER, NO_PAIRS, WORSE, Paired
from tred.tables.table import Table, column_label, paired_columns

DASH = "—"
MARK = {BETTER: "↑", WORSE: "↓"}
TEX_MARK = {BETTER: "$\\uparrow$", WORSE: "$\\downarrow$"}


def weights_caption(table: Table) -> str:
    """`Weights: L2-SP alpha=0.001; ...` from the runs' own configs, and how they were chosen."""
    runs = table.runs
    if "weights" not in runs:
        return ""
    parts = []
    for m in table.grid.methods:
        values = sorted({w for w in runs.loc[runs.method == m, "weights"].dropna() if w})
        if values:
            parts.append(f"{display_name(m)} {' / '.join(values)}")
    if not parts:
        return ""
    notes = {n.strip() for n in runs.get("weights_note", pd.Series(dtype=str)).dropna() if n and n.strip()}
    # a tuned file updated by `tune_summary --update` keeps the earlier note and adds to it: one mention
    notes = sorted(n for n in notes if not any(n != other and n in other for other in notes))
    return "Weights: " + "; ".join(parts) + "." + (f" {' '.join(notes)}" if notes else "")


def _cells(table: Table, style: str) -> list[list[str]]:
    """Formatted body rows; style is 'md' or 'tex'."""
    s, k, n_exp = table.summary, table.digits, len(table.grid.seeds)
    pm = " $\\pm$ " if style == "tex" else " ± "
    bold = (lambda x: f"\\textbf{{{x}}}") if style == "tex" else (lambda x: f"**{x}**")
    dash = "---" if style == "tex" else DASH
    best = {c: s[(c, "mean")].round(k).max() for c in [*table.columns, "Avg.", "Gain vs FT"]}
    warned = warned_cells(table)
    body = []
    for m in table.grid.methods:
        row = [_escape(display_name(m)) if style == "tex" else display_name(m)]
        for c in table.columns:
            mean, std, n = s.at[m, (c, "mean")], s.at[m, (c, "std")], int(s.at[m, (c, "n")])
            if math.isnan(mean):
                row.append(dash)
                continue
            text = f"{mean:.{k}f}" + (f"{pm}{std:.{k}f}" if not math.isnan(std) else "")
            text = bold(text) if round(mean, k) == best[c] else text
            row.append(text + (f" (n={n})" if n < n_exp else "") + ("!" if (m, c) in warned else ""))
        for c, sign in (("Avg.", ""), ("Gain vs FT", "+")):
            v = s.at[m, (c, "mean")]
            text = dash if math.isnan(v) else f"{v:{sign}.{k}f}"
            row.append(bold(text) if not math.isnan(v) and round(v, k) == best[c] else text)
        body.append(row)
    return body


def warned_cells(table: Table) -> set:
    """(method, column) of the cells that average a run with a health warning."""
    runs, several = table.runs, len(table.grid.rates) > 1
    if "warnings" not in runs:
        return set()
    bad = runs[(runs["status"] == "completed") & runs["warnings"].fillna("").astype(bool)]
    return {(r.method, column_label(r.dataset, r.sample_rate, several)) for r in bad.itertuples()}


def _escape(text: str) -> str:
    for ch in "\\&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text


def missing_note(table: Table) -> str:
    miss, total = table.missing, table.expected_runs
    if miss.empty:
        return f"All {total} runs completed."
    counts = miss["reason"].value_counts()
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    return f"Missing {len(miss)} of {total} runs ({parts}); cells without any completed seed show {DASH}."


def health_note(table: Table) -> str:
    """Runs that completed but reported a health warning (chance-level accuracy, a penalty far
    above the cross-entropy): their cells carry `!` instead of being averaged silently."""
    runs = table.runs
    if "warnings" not in runs:
        return ""
    bad = runs[(runs["status"] == "completed") & runs["warnings"].fillna("").astype(bool)]
    if bad.empty:
        return ""
    listed = "; ".join(f"{r.run_dir}: {r.warnings}" for r in bad.head(5).itertuples())
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    return f"! = the cell averages {len(bad)} run(s) that reported a health warning: {listed}{more}."


def provenance_note(table: Table) -> str:
    """Thread counts and library / code versions of the completed runs, and whether they differ."""
    done = table.runs[table.runs["status"] == "completed"]
    parts = []
    if "threads" in done and done["threads"].notna().any():
        threads = sorted({int(t) for t in done["threads"].dropna()})
        if len(threads) > 1:
            parts.append(f"runs differ in CPU threads ({', '.join(map(str, threads))}): a table is reproducible "
                         "bit for bit only with the same launcher settings")
        else:
            parts.append(f"threads per run {threads[0]}")
    agree = (("kernels", "kernels ", "runs differ in kernel settings (pooled with --allow-mixed): "),
             ("versions", "versions: ", "runs differ in versions: "))
    for column, same, differ in agree:
        values = sorted({v for v in done[column].dropna() if v}) if column in done else []
        if values:
            parts.append((same if len(values) == 1 else differ) + " | ".join(values))
    return ("Runs: " + "; ".join(parts) + ".") if parts else ""


def cost_note(table: Table) -> str:
    """What the completed runs cost, from their own `wall_time_s` (the sum is CPU- or GPU-time of
    one job at a time; a parallel sweep's wall clock is shorter), and TRED's stage-1 share of the
    fine-tuning time per TRED method. The share is `stage1_compute_time_s` (what stage 1 costs a
    run that finds no cache: cached entries keep their compute time), so it does not depend on
    which run of a sweep filled the cache; runs from before that field use `stage1_time_s`, the
    time the run spent (a cache hit costs it nothing), and the note says so. Runs resumed after an
    interruption (`attempts` > 1) are counted: their earlier attempts' time up to the checkpoint
    resumed from is in their own times; runs from before `attempts` existed count only their last
    attempt, which the note cannot tell. A run that adopted a tuning run's training (`trained_in`,
    `reuse_from`) counts that training's time too, and the note says how much of the sum that is."""
    done = table.runs[table.runs["status"] == "completed"]
    if "wall_time_s" not in done or done["wall_time_s"].isna().all():
        return ""
    wall = done["wall_time_s"].dropna()
    text = (f"Cost: {len(wall)} completed runs, {_duration(wall.sum())} of run time in all "
            f"(sum of wall_time_s), median {_duration(wall.median())} per run")
    adopted = done["trained_in"].notna() if "trained_in" in done else pd.Series(False, index=done.index)
    resumed = int(((done["attempts"].fillna(1) > 1) & ~adopted).sum()) if "attempts" in done else 0
    if resumed:
        text += (f" ({resumed} resumed after an interruption, each with its earlier attempts' time up to the "
                 "checkpoint it resumed from)")
    if adopted.any():
        trained = _duration(done.loc[adopted, "trained_time_s"].sum())
        text += (f"; {int(adopted.sum())} runs took over the finished training of the tuning run with the same "
                 f"weights and seed (reuse_from) and were only scored here: {trained} of the sum is that "
                 "training, spent in the tuning sweep")
    tred = done[done["method"].map(is_tred) & (done["finetune_time_s"] > 0)]
    computed = "stage1_compute_time_s" in tred and tred["stage1_compute_time_s"].notna().all()
    s1 = tred["stage1_compute_time_s" if computed else "stage1_time_s"]
    tred = tred[s1.notna()]
    if len(tred):
        share = 100 * s1[tred.index] / tred["finetune_time_s"]
        by = share.groupby(tred["method"])
        spans = ", ".join(f"{display_name(m)} {_span(by.get_group(m))}" for m in method_order(by.groups))
        how = ("as computed (a cache hit at its compute time)" if computed
               else "as the runs spent it (a cache hit costs nothing)")
        text += f"; TRED stage 1 {how}, % of the fine-tuning time: {spans}"
        gaps = tred["disentangle_reference_gap"].dropna()
        if len(gaps):
            text += f"; reference gap {gaps.min():.2g}-{gaps.max():.2g}"
    return text + "."


def _span(values: pd.Series) -> str:
    lo, hi = round(values.min()), round(values.max())
    return f"{lo:.0f}" if lo == hi else f"{lo:.0f}-{hi:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def caption(table: Table) -> str:
    return (f"Top-1 test accuracy (%), mean ± std over {len(table.grid.seeds)} seeds "
            f"(n = seeds completed when fewer); best per column in bold; "
            f"Gain vs FT = average difference to fine-tuning (L2) over the columns.")


def _paired_text(p: Paired, k: int, n_exp: int, style: str) -> str:
    if p.n == 0:
        return "---" if style == "tex" else DASH
    text = f"{p.mean:+.{k}f}"
    if not math.isnan(p.low):
        text += f" [{p.low:+.{k}f}, {p.high:+.{k}f}]"
    mark = (TEX_MARK if style == "tex" else MARK).get(p.verdict)
    text += f" {mark}" if mark else ""
    return text + (f" (n={p.n})" if p.n < n_exp else "")


def _paired_rows(table: Table, style: str, paired: dict) -> list[list[str]]:
    n_exp, k = len(table.grid.seeds), table.digits
    rows = []
    for m in dict.fromkeys(key[0] for key in paired):
        name = _escape(display_name(m)) if style == "tex" else display_name(m)
        rows.append([name, *(_paired_text(paired.get((m, c), NO_PAIRS), k, n_exp, style)
                             for c in paired_columns(table))])
    return rows


def paired_blocks(table: Table) -> list[tuple[str, str, dict]]:
    """(header, caption, paired differences) of each paired table: vs fine-tuning, then the TRED
    rows vs the best baseline, then vs each reference the table was asked for (`against`)."""
    seeds = len(table.grid.seeds)
    how = (f"paired by seed (same seed = same training subset and augmentation stream), mean [95% "
           f"Student-t interval] over the {seeds} seeds")
    tail = ("p < 0.05 after Holm's correction across the rows of each column (the interval shown is the "
            "uncorrected 95% one); no mark: not resolved (n = seeds paired when fewer; no interval with one pair).")
    blocks = []
    if table.paired:
        blocks.append(("Δ vs Fine-tune", f"Difference to fine-tuning (L2) in points, {how}; ↑ / ↓: better / "
                       f"worse than fine-tuning, {tail}", table.paired))
    if table.paired_best:
        best = display_name(table.best_baseline)
        blocks.append((f"Δ vs {best}", f"Difference of the TRED rows to the best baseline, {best} (the highest "
                       f"average of L2-SP, AT, DELTA and BSS in this table), in points, {how}; ↑ / ↓: better / "
                       f"worse than {best}, {tail}", table.paired_best))
    for ref, paired in table.paired_extra.items():
        if paired:
            name = display_name(ref)
            blocks.append((f"Δ vs {name}", f"Difference of the TRED rows to {name} (make_table --against), in "
                           f"points, {how}; ↑ / ↓: better / worse than {name}, {tail}", paired))
    return blocks


DEFAULT_TRED = "tred-projection"  # TRED's default recipe, chosen on held-out data before any table
CLAIM_GAIN = 2.0  # the paper: "improves the standard fine-tuning by more than 2% in average"


def _claim_part(table: Table, method: str, column: str) -> str:
    p = table.paired.get((method, column), NO_PAIRS)
    if p.n < 2:
        return f"{display_name(method)}: fewer than two seeds paired with fine-tuning"
    k = table.digits
    status = ("shown (the whole interval is above +2)" if p.low > CLAIM_GAIN else
              "refuted (the whole interval is below +2)" if p.high < CLAIM_GAIN else
              "unresolved (the interval contains +2)")
    text = (f"{display_name(method)} is {p.mean:+.{k}f} [{p.low:+.{k}f}, {p.high:+.{k}f}] over fine-tuning: "
            f"+2 is {status}")
    best = table.paired_best.get((method, column))
    if best is not None and best.n >= 2:
        verdict = {BETTER: "above it", WORSE: "below it"}.get(best.verdict, "not resolved")
        text += (f"; against the best baseline, {display_name(table.best_baseline)}, {best.mean:+.{k}f} "
                 f"[{best.low:+.{k}f}, {best.high:+.{k}f}] ({verdict}, Holm-corrected)")
    return text


def claim_check(table: Table) -> str:
    """One sentence on the paper's claim (TRED more than 2 points above fine-tuning, and above the
    other regularizers), on the table's average column: TRED's default first (chosen before the
    table), then the best TRED row by its test mean (picked on this table, hence optimistic)."""
    column = paired_columns(table)[-1]
    tred = [m for m in table.grid.methods if is_tred(m) and table.paired.get((m, column), NO_PAIRS).n]
    if not tred or not table.paired:
        return ""
    parts = []
    if DEFAULT_TRED in tred:
        parts.append(f"TRED's default, {_claim_part(table, DEFAULT_TRED, column)}")
    best = max(tred, key=lambda m: table.paired[(m, column)].mean)
    if best != DEFAULT_TRED or not parts:
        parts.append(f"the best TRED row by test mean (picked on this table, so an optimistic figure), "
                     f"{_claim_part(table, best, column)}")
    where = "" if column != "Avg." else " (average over the columns)"
    return f"Claim check{where}: " + "; ".join(parts) + "."


def to_markdown(table: Table) -> str:
    header = ["Method", *table.columns, "Avg.", "Gain vs FT"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + [":---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in _cells(table, "md")]
    out = [*lines, "", caption(table)]
    out += [n for n in (weights_caption(table), missing_note(table), health_note(table), provenance_note(table),
                        cost_note(table)) if n]
    for head, text, paired in paired_blocks(table):
        ph = [head, *paired_columns(table)]
        out += ["", "| " + " | ".join(ph) + " |", "|" + "|".join([":---"] + [":---:"] * (len(ph) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in _paired_rows(table, "md", paired)]
        out += ["", text]
    claim = claim_check(table)
    if claim:
        out += ["", claim]
    return "\n".join([*out, ""])


def to_latex(table: Table) -> str:
    header = ["Method", *map(_escape, table.columns), "Avg.", "Gain vs FT"]
    lines = [f"% {caption(table)}", f"% {missing_note(table)}",
             "\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(header) + " \\\\", "\\midrule"]
    lines += [" & ".join(r) + " \\\\" for r in _cells(table, "tex")]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    for i, note in enumerate(n for n in (weights_caption(table), health_note(table), provenance_note(table),
                                         cost_note(table)) if n):
        lines.insert(2 + i, f"% {note}")
    for head, text, paired in paired_blocks(table):
        cols = paired_columns(table)
        lines += [f"% {text.replace('↑', 'up').replace('↓', 'down')}",
                  "\\begin{tabular}{l" + "c" * len(cols) + "}", "\\toprule",
                  " & ".join([_escape(head).replace("Δ", "$\\Delta$"), *map(_escape, cols)]) + " \\\\",
                  "\\midrule"]
        lines += [" & ".join(r) + " \\\\" for r in _paired_rows(table, "tex", paired)]
        lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines).replace(" (n=", "\\,(n=")


def to_csv_frame(table: Table) -> pd.DataFrame:
    """Numbers, not strings: one mean/std/n triple per column, then avg and gain."""
    s = table.summary
    out = pd.DataFrame({"method": table.grid.methods,
                        "name": [display_name(m) for m in table.grid.methods]})
    for c in table.columns:
        for part in ("mean", "std", "n"):
            out[f"{c} {part}"] = s[(c, part)].to_numpy()
    out["avg"] = s[("Avg.", "mean")].to_numpy()
    out["gain_vs_finetune"] = s[("Gain vs FT", "mean")].to_numpy()
    if table.paired:  # the paired table's columns, fine-tuning's own row empty
        for c in paired_columns(table):
            cells = [table.paired.get((m, c), NO_PAIRS) for m in table.grid.methods]
            for part in ("mean", "low", "high", "n"):
                out[f"{c} diff_vs_ft {part}"] = [getattr(p, part) if m != FINETUNE else math.nan
                                                 for m, p in zip(table.grid.methods, cells)]
            out[f"{c} diff_vs_ft verdict"] = [p.verdict if m != FINETUNE else ""
                                              for m, p in zip(table.grid.methods, cells)]
    if table.paired_best:  # the TRED rows against the best baseline (named in `best_baseline`)
        out["best_baseline"] = table.best_baseline
        for c in paired_columns(table):
            cells = [table.paired_best.get((m, c)) for m in table.grid.methods]
            for part in ("mean", "low", "high", "n"):
                out[f"{c} diff_vs_best {part}"] = [getattr(p, part) if p else math.nan for p in cells]
            out[f"{c} diff_vs_best verdict"] = [p.verdict if p else "" for p in cells]
    for ref, paired in table.paired_extra.items():  # the TRED rows against each --against reference
        for c in paired_columns(table):
            cells = [paired.get((m, c)) for m in table.grid.methods]
            for part in ("mean", "low", "high", "n"):
                out[f"{c} diff_vs_{ref} {part}"] = [getattr(p, part) if p else math.nan for p in cells]
            out[f"{c} diff_vs_{ref} verdict"] = [p.verdict if p else "" for p in cells]
    if "weights" in table.runs:
        runs = table.runs
        out["weights"] = [" / ".join(sorted({w for w in runs.loc[runs.method == m, "weights"].dropna() if w}))
                          for m in table.grid.methods]
    return out


def section_text(table: Table, markdown: str, command: str) -> str:
    """A page section (tred/tables/page.py): the command and when the runs finished, then the
    table as table.md has it."""
    return f"{generated_line(command, [table])}\n\n{markdown}"


def generated_line(command: str, tables: list[Table]) -> str:
    """A generated section's first line: its command, how many runs it reads and when the last ended."""
    done = [t.runs[t.runs["status"] == "completed"] for t in tables]
    days = [d["finished"].dropna().max() for d in done if "finished" in d and d["finished"].notna().any()]
    when = f", the last run finished {max(days)}" if days else ""
    return f"_Generated by `{command}` from {sum(map(len, done))} runs{when}._"

