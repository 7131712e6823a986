"""Mean validation accuracy per method and value of one swept key, over the runs of a tuning sweep.

    python scripts/tune_summary.py <sweep dir> <key, e.g. regularizer.tred.alpha>

Reads result.json + config.yaml of every completed run with `eval_split: val`; failed runs are
counted per value (a value that diverges is not a good default even if its other runs are fine).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tred.io import read_json


def main(sweep: str, key: str) -> None:
    rows = []
    for res in sorted(Path(sweep).rglob("result.json")):
        result = read_json(res)
        if result.get("eval_split") != "val":
            sys.exit(f"error: {res} was not evaluated on a validation split (eval_split != val)")
        value = OmegaConf.select(OmegaConf.load(res.parent / "config.yaml"), key)
        rows.append({"method": result["method"], key: value, "dataset": result["dataset"], "status": result["status"],
                     "val_acc": result.get("test_acc")})
    if not rows:
        sys.exit(f"error: no result.json under {sweep}")
    df = pd.DataFrame(rows)
    table = df.pivot_table(index=["method", key], columns="dataset", values="val_acc", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    table["failed"] = df[df.status != "completed"].groupby(["method", key]).size().reindex(table.index, fill_value=0)
    print(table.round(2).to_markdown())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
