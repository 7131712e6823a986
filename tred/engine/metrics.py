"""metrics.csv: one flat row per logged step, stage epoch or evaluation; pandas reads it directly.

Rows may bring new columns (stage-1 diagnostics, penalty terms), so the file is rewritten
atomically with the union of columns on each flush. Sinks (W&B) receive every row too.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tred.io import atomic_write


class MetricsLog:
    def __init__(self, path: str | Path, sinks=()):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.sinks = list(sinks)

    def log(self, row: dict) -> None:
        row = {k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}
        self.rows.append(row)
        for sink in self.sinks:
            sink.log_row(row)
        self.flush()

    def restore(self, rows: list[dict]) -> None:
        """The rows of the attempts before this one (a checkpoint's): into metrics.csv, and again
        to the sinks, whose run (one per attempt: a W&B run is not resumed) starts empty."""
        self.rows = list(rows)
        for row in self.rows:
            for sink in self.sinks:
                sink.log_row(row)
        self.flush()

    def columns(self) -> list[str]:
        cols: dict[str, None] = {}
        for row in self.rows:
            cols.update(dict.fromkeys(row))
        return list(cols)

    def flush(self) -> None:
        cols = self.columns()

        def write(fh):
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(self.rows)

        atomic_write(self.path, write)
