"""scripts/verify.py (`make verify`): the comparison and its exit status, on values given to it
(the runs themselves are `make verify`; their recording is scripts/verify_expected.json)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import verify  # noqa: E402

MACHINE = {"cpu": "Some CPU", "cpu_capability": "AVX2"}
VERSIONS = {"torch": "2.14.1"}


def expected_file(tmp_path: Path, runs: dict) -> Path:
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({"recorded": "2026-12-06", "machine": MACHINE, "versions": VERSIONS, "runs": runs}))
    return path


def obtained(runs: dict) -> dict:
    return {m: {**v, "machine": MACHINE, "versions": VERSIONS} for m, v in runs.items()}


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_every_value_matching_bit_for_bit_passes(tmp_path, monkeypatch, capsys):
    runs = {"l2": {"final_train_loss": 0.4653533101081848, "test_acc": 88.57715430861724}}
    monkeypatch.setattr(verify, "run_all", lambda workdir: obtained(runs))
    assert verify.main(["--expected", str(expected_file(tmp_path, runs))]) == 0
    out = capsys.readouterr().out
    assert ["l2", "final_train_loss", "0.4653533101081848", "0.4653533101081848", "match"] in rows(out)
    assert "all 2 values match" in out


def test_one_ulp_off_or_a_missing_run_is_a_mismatch(tmp_path, monkeypatch, capsys):
    want = {"l2": {"final_train_loss": 0.4653533101081848, "test_acc": 88.57715430861724},
            "delta": {"final_train_loss": 25.81709098815918, "test_acc": 92.31796927187709}}
    up = math.nextafter(0.4653533101081848, 1.0)  # the next float: one unit in the last place
    got = {"l2": {"final_train_loss": up, "test_acc": 88.57715430861724}}
    monkeypatch.setattr(verify, "run_all", lambda workdir: obtained(got))
    assert verify.main(["--expected", str(expected_file(tmp_path, want))]) == 1
    out = capsys.readouterr().out
    assert ["l2", "final_train_loss", "0.4653533101081848", repr(up), "MISMATCH"] in rows(out)
    assert ["l2", "test_acc", "88.57715430861724", "88.57715430861724", "match"] in rows(out)
    assert ["delta", "test_acc", "92.31796927187709", "missing", "MISMATCH"] in rows(out)
    assert "3 of 4 values differ" in out


def test_without_the_expected_file_it_says_how_to_make_one(tmp_path, capsys):
    assert verify.main(["--expected", str(tmp_path / "none.json")]) == 2
    assert "record it with --record" in capsys.readouterr().err


def test_the_committed_expectation_covers_the_three_runs():
    expected = json.loads(verify.EXPECTED.read_text())
    assert set(expected["runs"]) == {"l2", "delta", "tred-projection"}
    assert expected["kernels"]["mode"] == "portable" and expected["args"] == verify.ARGS
    assert all(isinstance(v[k], float) for v in expected["runs"].values() for k in verify.VALUES)
