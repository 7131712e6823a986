"""A run reports its own health: completed, but flagged when its numbers mean nothing (issue 14);
failed, naming the iteration and the term, when its loss is NaN or infinite (tred/engine/loop.py)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch

from conftest import make_cfg
from tred.engine.health import health_warnings
from tred.errors import NonFiniteLossError
from tred.io import read_json
from tred.regularizers import REGISTRY, Regularizer
from tred.run import run


def rows(*terms, train_acc=90.0):
    """Finetune rows (iterations 10, 20, ...) with the given loss terms, plus an eval row."""
    out = [{"stage": "finetune", "iter": 10 * (i + 1), "lr": 0.01, **t, "loss": sum(t.values()),
            "train_acc": train_acc, "imgs_per_s": 100.0} for i, t in enumerate(terms)]
    return out + [{"stage": "eval", "iter": 10 * len(terms), "test_acc": 80.0}]


def test_healthy_run_has_no_warnings():
    r = rows({"ce": 0.5, "l2sp_sp": 2.0}, {"ce": 0.2, "l2sp_sp": 3.0}, {"ce": 0.01, "l2sp_sp": 4.0})
    # l2sp_sp is 400x a CE of 0.01, but a fitted model makes the CE tiny: compared with ln(10)
    assert health_warnings(r, 80.0, 10) == []


@pytest.mark.parametrize("acc, train_acc, expected", [
    (15.0, 90.0, ["chance-level test accuracy: 15.0% <= 15.0% (1.5 x chance for 10 classes)"]),
    (80.0, 12.5, ["chance-level training accuracy: 12.5% in the last logged window (iteration 30) "
                  "<= 15.0% (1.5 x chance for 10 classes)"]),
    (15.1, 15.1, []),
])
def test_chance_level(acc, train_acc, expected):
    r = rows({"ce": 2.3}, {"ce": 2.3}, {"ce": 2.3}, train_acc=train_acc)
    assert health_warnings(r, acc, 10) == expected


def test_chance_level_names_the_split():
    assert health_warnings(rows({"ce": 0.1}), 40.0, 4, split="val") == []
    assert health_warnings(rows({"ce": 0.1}), 37.5, 4, split="val") == [
        "chance-level val accuracy: 37.5% <= 37.5% (1.5 x chance for 4 classes)"]


def test_dominating_regularizer_term():
    big = [{"ce": 1.0, "delta": 5.0, "bss": 0.1}, {"ce": 3.0, "delta": 400.0, "bss": 0.1},
           {"ce": 3.0, "delta": 300.0, "bss": 0.1}, {"ce": 2.5, "delta": 260.0, "bss": 0.1}]
    (msg,) = health_warnings(rows(*big), 80.0, 10)
    assert msg == ("regularizer term `delta` stays >= 100x the cross-entropy (taken as at least ln(10) = 2.3, "
                   "the CE of a uniform guess) in each of the last 3 logged rows (last: 260 vs 2.5): the "
                   "penalty, not the task, drives training")
    # one row below 100x among the last three: not "stays"
    assert health_warnings(rows(*big[:2], {"ce": 3.0, "delta": 200.0, "bss": 0.1}, big[3]), 80.0, 10) == []
    # a huge CE (3.6e12 at lr=1e6) is no regularizer domination, and NaN/absent terms are ignored
    assert health_warnings(rows({"ce": 3.6e12, "l2sp_sp": 1e13}, {"ce": math.nan, "x": 1.0}), 80.0, 10) == []


def test_fewer_rows_than_the_window_and_no_rows():
    (msg,) = health_warnings(rows({"ce": 0.1, "at": 500.0}), 80.0, 10)
    assert msg.startswith("regularizer term `at` stays >= 100x") and "in the last logged row (last: 500 vs 0.1)" in msg
    assert health_warnings([], 80.0, 10) == []


def test_smoke_run_at_chance_is_completed_with_a_warning(tmp_path, smoke, caplog):
    """trainer.lr=1e6: CE 3.7e12 after 4 iterations, every prediction the same class: finite, so
    completed, but at chance, and the result says so."""
    result = smoke("trainer.lr=1e6", "dataset.test_per_class=10", "trainer.threads=1")
    assert result["status"] == "completed" and result["test_acc"] <= 15.0
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["warnings"] == result["warnings"]
    assert any(w.startswith("chance-level test accuracy") for w in result["warnings"])
    assert any(w.startswith("chance-level training accuracy") for w in result["warnings"])
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert all(any(w in m for m in logged) for w in result["warnings"])


def test_first_step_problems():
    from tred.engine.health import first_step_problems

    assert first_step_problems({"ce": 5.0, "tred_fm": 500.0, "tred_head": 0.2}, 102) == [("tred_fm", 500.0, 5.0)]
    assert first_step_problems({"ce": 5.0, "tred_fm": 499.0}, 102) == []  # below 100 x 5
    assert first_step_problems({"ce": 1.0, "x": 462.0}, 102) == []  # CE taken as at least ln(102) = 4.62
    assert first_step_problems({"ce": 1.0, "x": 463.0}, 102) == [("x", 463.0, math.log(102))]
    assert first_step_problems({"ce": 0.01, "x": 50.0}, 10) == []  # CE taken as at least ln(10)
    assert first_step_problems({"ce": 1.0, "x": math.nan}, 10) == []


def test_a_penalty_that_dwarfs_the_task_is_caught_at_the_first_step(tmp_path, monkeypatch):
    """As TRED at DELTA's published alpha on Lite0 (Flowers-102: chance after the whole run)."""
    from dataclasses import dataclass

    from omegaconf import open_dict

    from conftest import compose_cfg
    from tred.errors import PenaltyScaleError
    from tred.regularizers import REGISTRY, Regularizer
    from tred.run import run

    class Loud(Regularizer):
        name, weight_key = "loud", "alpha"

        @dataclass
        class Config:
            alpha: float = 1.0

        def penalty(self, step):  # 1000 x alpha, with a gradient
            return {"loud": self.cfg.alpha * (1000.0 + 0.0 * step.logits.sum())}

    monkeypatch.setitem(REGISTRY, "loud", Loud)

    def go(*over, alpha=1.0, where="a"):
        cfg = compose_cfg([f"cache_dir={tmp_path / 'cache'}", "dataset.test_per_class=5", *over])
        with open_dict(cfg):
            cfg.regularizer = {"loud": {"alpha": alpha}}
        return run(cfg, tmp_path / where)

    with pytest.raises(PenaltyScaleError, match=r"first step the loss term `loud` is 1e\+03, >= 100x the cross-"
                       r"entropy \(2.\d+; taken as at least ln\(10\) = 2.3\)"
                       r".*regularizer.loud.alpha=1 is too large.*~0.002"):
        go("trainer.penalty_check=error")
    failed = json.loads((tmp_path / "a" / "result.json").read_text())
    assert failed["status"] == "failed" and "PenaltyScaleError" in failed["error"]
    warned = go(where="b")  # the default: warn
    assert warned["status"] == "completed" and warned["warnings"][0].startswith("at the first step the loss term")
    quiet = go(alpha=0.01, where="c")  # 10 < 100 x 2.3: nothing to say at the start
    assert quiet["status"] == "completed" and not any(w.startswith("at the first step") for w in quiet["warnings"])


class Boom(Regularizer):
    """Test method whose term is NaN from iteration `at_iter` on (iterations count from 0)."""

    name = "boom"

    @dataclass
    class Config:
        at_iter: int = 1

    calls = 0

    def penalty(self, step):
        self.calls += 1
        return {"boom": torch.tensor(float("nan") if self.calls > self.cfg.at_iter else 0.0)}


def test_nan_loss_fails_with_iteration_and_term(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, Boom.name, Boom)
    cfg = make_cfg(tmp_path, regularizer={"l2": {}, "boom": {"at_iter": 1}})
    msg = r"non-finite loss at iteration 1: term\(s\) \['boom'\]"
    with pytest.raises(NonFiniteLossError, match=msg):
        run(cfg, tmp_path / "run")
    result = read_json(tmp_path / "run" / "result.json")
    assert result["status"] == "failed" and "test_acc" not in result
    assert "NonFiniteLossError" in result["error"] and "iteration 1" in result["error"] and "boom" in result["error"]


def test_divergence_inside_bss_is_the_non_finite_loss_error(tmp_path, monkeypatch):
    """NaN features (logits still finite) reach BSS's SVD at iteration 2: the run fails with the
    engine's message naming the iteration and the term, not torch's _LinAlgError."""
    from tred.models.network import TransferNet

    calls = []

    def forward(self, x):
        feats = self.backbone(x)
        logits = self.head(feats)
        if self.training:
            calls.append(1)
            if len(calls) > 2:
                feats = feats.clone()
                feats[0, 0] = float("nan")
        return logits, feats

    monkeypatch.setattr(TransferNet, "forward", forward)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration 2: term\(s\) \['bss'\] = \[nan\]"):
        run(make_cfg(tmp_path, ["regularizer=bss"]), tmp_path / "run")
    result = read_json(tmp_path / "run" / "result.json")
    assert result["status"] == "failed"
    assert result["error"].startswith("NonFiniteLossError: non-finite loss at iteration 2")
