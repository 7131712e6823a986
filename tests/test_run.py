"""End to end: smoke runs write the run contract; Hydra multirun works; a completed run is skipped; a bad
config is refused before any work (the command line's errors: tests/test_train_script.py)."""

import json
import subprocess

import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import make_cfg
from tred.errors import ConfigError

CONTRACT = {"status", "test_acc", "dataset", "regularizer", "disentangle", "seed", "sample_rate",
            "iters", "wall_time_s", "finished"}


def test_smoke_run_writes_the_contract(tmp_path, smoke):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    for stale in (".result.json.x1.tmp", ".config.yaml.x2.tmp"):  # left by a SIGKILL while writing
        (run / stale).write_bytes(b"")
    result = smoke()
    assert CONTRACT <= set(result)
    assert result["status"] == "completed" and result["iters"] == 4 and result["disentangle"] is None
    assert 0 <= result["test_acc"] <= 100
    assert not list(run.glob(".*.tmp"))
    # provenance (informational): thread count, code version, library versions, CPU
    assert result["threads"] == torch.get_num_threads() and result["device"] == "cpu"
    assert set(result["versions"]) == {"python", "torch", "torchvision", "timm", "numpy"}
    assert result["versions"]["torch"] == torch.__version__
    assert result["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(result["machine"]) == {"arch", "cpu", "vendor", "cpu_offers", "cpu_capability"}
    # the kernel mode in force (this suite's process is portable, as conftest pinned it)
    kernels = result["kernels"]
    assert kernels["mode"] == "portable" and kernels["cpu_capability"] == "AVX2" == result["machine"]["cpu_capability"]
    assert kernels["threads"] == result["threads"] and kernels["environment"]["MKL_CBWR"] == "COMPATIBLE,STRICT"
    code = result["code_version"]  # the tests run from a git checkout
    assert len(code["commit"]) == 40 and isinstance(code["dirty"], bool)
    assert isinstance(result["warnings"], list)
    on_disk = json.loads((run / "result.json").read_text())
    assert on_disk["test_acc"] == result["test_acc"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"iter", "loss", "ce", "lr", "imgs_per_s"} <= set(metrics.columns)
    assert metrics.query("stage == 'eval'")["test_acc"].item() == result["test_acc"]
    assert (run / "config.yaml").is_file()


def test_same_seed_same_result(tmp_path):
    from conftest import run_smoke

    a = run_smoke(tmp_path / "a")
    b = run_smoke(tmp_path / "b")
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]


def test_completed_run_is_skipped_and_checkpoint_removed(tmp_path):
    from tred.engine.checkpoint import CHECKPOINT
    from tred.run import run

    cfg = make_cfg(tmp_path, ["trainer.max_iters=1"])
    first = run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / CHECKPOINT).exists()  # keep_checkpoint=false by default
    again = run(cfg, tmp_path / "run")
    assert again["skipped"] and again["test_acc"] == first["test_acc"]
    with pytest.raises(ConfigError, match=r"completed run of a different config \(trainer.lr: 0.01 -> 0.02\)"):
        run(make_cfg(tmp_path, ["trainer.max_iters=1", "trainer.lr=0.02"]), tmp_path / "run")


def test_bad_config_is_refused_before_any_work(tmp_path):
    """run() validates first: what each bad value says is tests/test_config.py's."""
    from tred.run import run

    with pytest.raises(ConfigError, match=r"trainer.max_iters must be > 0, got 0"):
        run(make_cfg(tmp_path, ["trainer.max_iters=0"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.slow  # tests/test_sweep_table.py runs a multirun (and more) in the fast suite
def test_multirun_of_two_smoke_runs(tmp_path, cli):
    out = cli("-m", "experiment=smoke", "seed=0,1", f"hydra.sweep.dir={tmp_path}",
                f"cache_dir={tmp_path / 'cache'}")
    assert out.returncode == 0, out.stderr[-2000:]
    results = sorted(tmp_path.rglob("result.json"))
    assert len(results) == 2
    assert {json.loads(p.read_text())["seed"] for p in results} == {0, 1}
    assert all("seed" in str(p.parent.name) for p in results)


def test_typed_value_beats_the_experiments_regularizer_overrides(tmp_path, cli):
    out = cli("experiment=smoke", "trainer.max_iters=1", "+regularizer_overrides={l2: {weight_decay: 0.5}}",
                "regularizer.l2.weight_decay=0.25", f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").regularizer.l2.weight_decay == 0.25


def test_code_version_is_none_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    from tred.provenance import code_version

    assert code_version(tmp_path) is None  # not a git checkout
    venv = tmp_path / "repo" / ".venv"
    venv.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    (tmp_path / "repo" / ".gitignore").write_text(".venv/\n")
    assert code_version(venv) is None  # inside a checkout, but not tracked by it (an installed package)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git at all: never fails the run
    assert code_version() is None


def test_provenance_is_not_part_of_a_runs_identity(tmp_path, smoke):
    """Another code version or thread count in result.json does not stop the skip."""
    first = smoke("trainer.max_iters=1", "dataset.test_per_class=5")
    res = tmp_path / "run" / "result.json"
    res.write_text(json.dumps({**json.loads(res.read_text()), "code_version": {"commit": "0" * 40, "dirty": True},
                               "threads": 99, "versions": {"torch": "0.0"}}))
    again = smoke("trainer.max_iters=1", "dataset.test_per_class=5", "trainer.threads=1")
    assert again["skipped"] and again["test_acc"] == first["test_acc"]


def test_checkpoint_of_another_split_is_not_resumed(tmp_path, smoke):
    """Fixing the data (here: removing a file) moves the seeded split; resuming the old checkpoint
    would score a model on test images it was trained on."""
    import fake_trees
    from tred.errors import DataError

    fake_trees.image_folder(tmp_path / "data", per_class=8, classes=3)
    over = ("dataset=image_folder", f"dataset.root={tmp_path / 'data'}", "dataset.image_size=32",
            "trainer.keep_checkpoint=true")
    first = smoke(*over)
    assert first["status"] == "completed" and len(first["split_digest"]) == 20
    (tmp_path / "run" / "result.json").unlink()  # e.g. a run that failed after its last checkpoint
    next((tmp_path / "data" / "class1").iterdir()).unlink()
    with pytest.raises(DataError, match="trained on another split of image_folder.*resume=never"):
        smoke(*over)
    again = smoke(*over, "resume=never")
    assert again["status"] == "completed" and again["split_digest"] != first["split_digest"]
