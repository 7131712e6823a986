"""Hand-written sweep directories for the table tests (tred/tables, tred/plots.py,
scripts/make_table.py): run directories as scripts/train.py leaves them (config.yaml and
result.json), with accuracies chosen so that every expected number can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

# (method, dataset) -> test_acc per seed (None: that seed failed)
ACCS = {
    ("l2", "elpv"): [80.0, 82.0, 84.0],      # 82.0 ± 2.0
    ("l2", "digits"): [60.0, 62.0, 64.0],    # 62.0 ± 2.0
    ("l2sp", "elpv"): [85.0, 87.0, 89.0],    # 87.0 ± 2.0
    ("l2sp", "digits"): [70.0, 72.0, None],  # seed 2 failed -> 71.0 ± 1.4 (n=2)
    ("tred-max_mmd", "elpv"): [90.0],        # seed 1 unfinished, seed 2 not run -> 90.0 (n=1)
}                                            # tred-max_mmd on digits: nothing -> —
REG = {"l2": ({"l2": {}}, None), "l2sp": ({"l2sp": {}}, None),
       "tred-max_mmd": ({"tred": {}}, {"name": "max_mmd"}), "tred-min_mi": ({"tred": {}}, {"name": "min_mi"})}


def write_run(root, method, dataset, seed, acc, *, status="completed", rate=1.0, sweep="t",
              iters=10, result=True, reg=None, note=None, extra=None):
    d = root / method / dataset / f"sr{rate}" / f"seed{seed}"
    d.mkdir(parents=True)
    reg, dis = (reg, None) if reg else REG[method]
    cfg = {"seed": seed, "sweep_name": sweep, "regularizer": reg, "disentangle": dis,
           "dataset": {"name": dataset, "sample_rate": rate}, "backbone": {"name": "b"},
           "trainer": {"max_iters": iters, "threads": seed}}  # threads may differ between runs
    if note:
        cfg["weights_note"] = note
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if result:
        res = {"status": status, "test_acc": acc, "method": method, "dataset": dataset, "seed": seed,
               "sample_rate": rate, "sweep": sweep, "regularizer": "+".join(reg), "iters": iters}
        if status == "failed":
            res.update(test_acc=None, error="NonFiniteLossError: boom")
        res.update(extra or {})
        (d / "result.json").write_text(json.dumps(res))
    return d


def small_sweep(root: Path) -> Path:
    """ACCS, plus tred-max_mmd elpv seed 1 interrupted (config.yaml only); no multirun.yaml."""
    for (m, ds), accs in reversed(list(ACCS.items())):  # order on disk must not matter
        for seed, acc in enumerate(accs):
            write_run(root, m, ds, seed, acc, status="completed" if acc is not None else "failed")
    write_run(root, "tred-max_mmd", "elpv", 1, None, result=False)  # interrupted
    return root


def paired_sweep(root: Path) -> Path:
    """Fine-tuning and L2-SP on two datasets, with their weights; L2-SP's digits seed 2 failed."""
    accs = {("l2", "elpv"): [80.0, 82.0, 84.0], ("l2sp", "elpv"): [81.0, 84.0, 85.5],
            ("l2", "digits"): [60.0, 62.0, 64.0], ("l2sp", "digits"): [59.0, 61.5, None]}
    regs = {"l2": {"l2": {"weight_decay": 1e-5}}, "l2sp": {"l2sp": {"alpha": 0.001, "beta": 0.01}}}
    for (m, ds), values in accs.items():
        for seed, acc in enumerate(values):
            write_run(root, m, ds, seed, acc, status="completed" if acc is not None else "failed",
                      reg=regs[m], note="Chosen on held-out data.")
    return root


def add_delta_and_tred_full(root: Path) -> Path:
    """DELTA (a higher average than L2-SP: the best baseline) and TRED-full, at seeds 0-2."""
    delta = {"delta": {"alpha": 1e-5, "beta": 0.01}}
    tred = {"tred": {"alpha": 1e-5, "beta": 0.01, "reference": "full"}}
    for seed, (d_elpv, d_digits, t_elpv, t_digits) in enumerate(
            [(83.0, 61.0, 84.0, 61.0), (85.0, 63.0, 85.0, 65.0), (86.0, 65.0, 87.0, 66.0)]):
        write_run(root, "delta", "elpv", seed, d_elpv, reg=delta)
        write_run(root, "delta", "digits", seed, d_digits, reg=delta)
        write_run(root, "tred-full", "elpv", seed, t_elpv, reg=tred)
        write_run(root, "tred-full", "digits", seed, t_digits, reg=tred)
    return root


STAGE1_CHECKS = {"disentangle_diagnostics_split": "test", "disentangle_relevant_test_acc": 80.0,
                 "source_probe_test_acc": 85.0, "disentangle_irrelevant_probe_test_acc": 12.0,
                 "disentangle_reference_gap": 0.3, "num_classes": 10}


def rates_sweep(root: Path) -> Path:
    """Fine-tuning and TRED Max-MMD on digits at sample rates 0.5 and 1.0, seeds 0-1; TRED is
    5 points better everywhere, and its runs carry stage-1 curves (metrics.csv) and checks."""
    for rate, base in ((0.5, 50.0), (1.0, 70.0)):
        for seed in (0, 1):
            write_run(root, "l2", "digits", seed, base + seed, rate=rate)
            d = write_run(root, "tred-max_mmd", "digits", seed, base + 5 + seed, rate=rate, extra=STAGE1_CHECKS)
            pd.DataFrame({"stage": ["disentangle"] * 3 + ["finetune"], "epoch": [1, 2, 3, None],
                          "mmd2": [0.1, 0.2, 0.3, None], "relevant_acc": [40, 50, 60, None],
                          "loss": [None, None, None, 1.0]}).to_csv(d / "metrics.csv", index=False)
    return root


# kind -> what load_runs says when it refuses the directory bad_sweep(tmp_path, kind) makes
REFUSALS = {"missing": "does not exist", "empty": "no runs under", "corrupt": "corrupt .*seed0/result.json",
            "sweep": "different sweeps", "trainer": "max_iters", "duplicate": "share",
            "validation": "tune_summary"}


def bad_sweep(tmp_path: Path, kind: str) -> Path:
    """A directory that cannot give an honest table (one per REFUSALS kind)."""
    if kind == "missing":
        return tmp_path / "nope"
    if kind == "empty":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    root = small_sweep(tmp_path / "sweep")
    first = root / "l2" / "elpv" / "sr1.0" / "seed0" / "result.json"
    if kind == "corrupt":
        first.write_text('{"status": "compl')
    elif kind == "sweep":
        write_run(root / "other", "l2", "elpv", 0, 1.0, sweep="smoke")
    elif kind == "trainer":
        write_run(root, "tred-max_mmd", "digits", 0, 1.0, iters=99)
    elif kind == "duplicate":
        write_run(root / "lr=0.1", "l2", "elpv", 0, 1.0)
    elif kind == "validation":  # a tuning run (dataset.validation=true) is not a test result
        first.write_text(json.dumps({**json.loads(first.read_text()), "eval_split": "val"}))
    else:
        raise ValueError(kind)
    return root
