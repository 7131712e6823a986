"""Does this machine compute what the README's tables were computed with? Run this first.

    python scripts/verify.py            # = make verify: exit 0 when every value matches, 1 when one does not
    python scripts/verify.py --record   # write the expected values (on the machine that made the tables)

Three short runs of the embedded benchmark's settings (experiment=mini_table: its tuned weights, one
thread per run, trainer.kernels=portable) on digits, seed 0, 60 iterations: fine-tuning, DELTA (a
feature-map regularizer with its channel attention) and TRED's default (the projection split, then
stage 2). They run from an empty temporary directory (no stage cache), two at a time. For each, the
final training loss and the test accuracy are compared with the values committed in
scripts/verify_expected.json, bit for bit (as decimal text with every digit): `match` or
`MISMATCH`. A mismatch means this machine, library versions or code computes other numbers than
the tables' (the file names the commit, versions and CPU it was recorded with).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "scripts" / "verify_expected.json"
METHODS = ("finetune", "delta", "tred_projection")
ARGS = ["experiment=mini_table", "dataset=digits", "seed=0", "trainer.max_iters=60", "logger=csv",
        "trainer.kernels=portable", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
VALUES = ("final_train_loss", "test_acc")


def run_all(workdir: Path) -> dict:
    """{method: {final_train_loss, test_acc, kernels, code_version, versions, machine}} of one sweep."""
    sweep = workdir / "sweep"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", f"method={','.join(METHODS)}", *ARGS,
           f"hydra.sweep.dir={sweep}", f"cache_dir={workdir / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: the verification runs failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = {}
    for res_path in sorted(sweep.rglob("result.json")):
        res = json.loads(res_path.read_text())
        with open(res_path.parent / "metrics.csv") as fh:
            losses = [r["loss"] for r in csv.DictReader(fh) if r.get("stage") == "finetune" and r.get("loss")]
        out[res["method"]] = {"final_train_loss": float(losses[-1]), "test_acc": res["test_acc"],
                              "kernels": res.get("kernels"), "code_version": res.get("code_version"),
                              "versions": res.get("versions"), "machine": res.get("machine")}
    return out


def compare(expected: dict, obtained: dict) -> list[tuple[str, str, str, str, bool]]:
    """(method, value, expected, obtained, equal) per compared value, bit for bit (repr of the float)."""
    rows = []
    for method, want in expected["runs"].items():
        got = obtained.get(method, {})
        for key in VALUES:
            a, b = want.get(key), got.get(key)
            rows.append((method, key, repr(a), "missing" if b is None else repr(b), a is not None and a == b))
    return rows


def report(rows) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"{'run':{width}s}  {'value':16s}  {'expected':22s}  {'obtained':22s}"]
    lines += [f"{m:{width}s}  {k:16s}  {a:22s}  {b:22s}  {'match' if ok else 'MISMATCH'}" for m, k, a, b, ok in rows]
    return "\n".join(lines)


def describe(record: dict) -> str:
    m, v = record.get("machine") or {}, record.get("versions") or {}
    return (f"{m.get('cpu')} ({m.get('vendor')}, offers {m.get('cpu_offers')}, kernels used "
            f"{m.get('cpu_capability')}), torch {v.get('torch')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help=f"write the obtained values to {EXPECTED.name}")
    ap.add_argument("--expected", type=Path, default=EXPECTED)
    args = ap.parse_args(argv)
    if not args.record and not args.expected.is_file():
        print(f"error: {args.expected} not found; record it with --record on the machine that made the tables",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tred-verify-") as tmp:
        obtained = run_all(Path(tmp))
    if args.record:
        first = next(iter(obtained.values()))
        record = {"recorded": datetime.date.today().isoformat(), "command": "python scripts/verify.py --record",
                  "args": ARGS, "code_version": first["code_version"], "versions": first["versions"],
                  "machine": first["machine"], "kernels": first["kernels"],
                  "runs": {m: {k: v[k] for k in VALUES} for m, v in obtained.items()}}
        args.expected.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.expected}")
        return 0
    expected = json.loads(args.expected.read_text())
    rows = compare(expected, obtained)
    print(report(rows))
    bad = sum(not r[4] for r in rows)
    mine = next(iter(obtained.values()), {})
    print(f"expected: recorded {expected.get('recorded')} on {describe(expected)}; this machine: {describe(mine)}")
    if bad:
        print(f"{bad} of {len(rows)} values differ: this machine does not reproduce the tables' numbers bit for bit "
              "(compare the versions and CPU above; docs/reliability.md, 'Numbers that travel')")
        return 1
    print(f"all {len(rows)} values match: this machine computes the tables' numbers bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
