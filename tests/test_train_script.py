"""scripts/train.py as people run it (in this process through conftest's `cli`; a new process
where only one shows it): a bad command line is one line and exit 2;
bad input found by the run fails it without a traceback; a finished run directory is never
written to when a run is skipped or refused; a read-only run directory is skipped when
complete, else one line (exit 2), and a sweep goes on (issue 14)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import CONFIGS, ROOT, TRAIN, compose_cfg

SMOKE = ["experiment=smoke", "dataset.test_per_class=3", "trainer.max_iters=2"]


def process(*args, cwd=ROOT):
    """`python scripts/train.py *args` in a new process (composition errors stop before torch is
    imported: about a second)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(TRAIN), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def options(group):
    return ", ".join(sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")))


@pytest.mark.parametrize("args, line", [
    (["trainer.max_iter=5"], r"error: unknown config key `trainer.max_iter`; the keys of `trainer` are: amp, "
                             r"batch_size, .*, max_iters, .*"),
    (["dataset.augment.flip=1"], r"error: unknown config key `dataset.augment.flip`; the keys of "
                                 r"`dataset.augment` are: crop_padding, hflip"),
    (["regularizer=foo"], rf"error: unknown regularizer option `foo`; valid: {options('regularizer')}"),
    (["-m", "seed=0,1", "regularizer=l2,foo"],
     rf"error: unknown regularizer option `foo`; valid: {options('regularizer')}"),
    (["regularizer=[l2sp,foo]"], rf"error: unknown regularizer option `foo`; valid: {options('regularizer')}"),
    (["--cfg", "job", "trainer.max_iter=5"], r"error: unknown config key `trainer.max_iter`; .*"),
    (["-m", "method=tred_full,tred_min_mi", "regularizer.tred.alpha=1"],
     r"error: unknown config key `regularizer.tred`; the keys of `regularizer` are: l2; with a sweep over "
     r"`method` .* run one method per command"),
    (["regularizer=[l2sp,l2sp]"], r"error: regularizer=\[l2sp,l2sp\] names `l2sp` more than once; list each "
                                  r"regularizer once .*"),
    (["trainer.lr=["], r"error: no viable alternative at input '\[' .*"),
    (["dataset=not_a_dataset"], rf"error: unknown dataset option `not_a_dataset`; valid: {options('dataset')}"),
    (["backbone=not_a_backbone"], rf"error: unknown backbone option `not_a_backbone`; valid: {options('backbone')}"),
    (["trainer.max_iters=0"], r"error: trainer\.max_iters must be > 0, got 0"),  # tred/config.py's checks
    (["dataset.sample_rate=2"], r"error: dataset\.sample_rate must be in \(0, 1\], got 2(\.0)?"),
])
def test_bad_command_line_is_one_line_and_exit_2(tmp_path, cli, args, line):
    flags = [a for a in args if a.startswith("-") or a == "job"]
    proc = cli(*flags, *SMOKE, *[a for a in args if a not in flags],
                 f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2, proc.stderr
    (only,) = proc.stderr.strip().splitlines()
    assert re.fullmatch(line, only), only
    # nothing ran: no file anywhere (Hydra itself may have made the empty run directory)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "multirun.yaml"]


@pytest.mark.parametrize("override, message", [
    ("dataset.sample_rate=0.01", "no image"),
    ("backbone.pretrained=/no/such/weights.pth", "no such file"),
])
def test_bad_input_found_by_the_run_fails_without_a_traceback(tmp_path, cli, override, message):
    run_dir = tmp_path / "run"
    out = cli("experiment=smoke", override, f"hydra.run.dir={run_dir}", f"cache_dir={tmp_path}")
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    result = run_dir / "result.json"
    assert not result.exists() or json.loads(result.read_text())["status"] == "failed"


def test_help_and_cfg_still_work(tmp_path):
    assert process("--help").returncode == 0
    proc = process("--cfg", "job", *SMOKE)
    assert proc.returncode == 0 and "max_iters: 2" in proc.stdout


def test_a_bad_command_line_in_a_process(tmp_path):
    """The exit status and the one stderr line as a shell sees them."""
    proc = process(*SMOKE, "trainer.max_iter=5", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: unknown config key `trainer.max_iter`; the keys of `trainer` are: ")


# ---------------------------------------------------------------------------- finished run dirs
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed smoke run directory, with the .hydra/ and train.log an earlier
    `scripts/train.py` run leaves there."""
    from tred.run import run

    root = tmp_path_factory.mktemp("finished")
    overrides = [*SMOKE[1:], f"cache_dir={root / 'cache'}"]
    run(compose_cfg(overrides), root / "run")
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (root / "run" / ".hydra").mkdir(exist_ok=True)
        (root / "run" / ".hydra" / name).write_text(f"# {name} of the run that finished\n")
    (root / "run" / "train.log").write_text("[...] the run that finished\n")
    return root / "run", [SMOKE[0], *overrides]


def copy_of(finished, where: Path) -> Path:
    shutil.copytree(finished, where, symlinks=True)
    return where


def snapshot(root: Path) -> dict:
    """Every path under `root` (and `root`) with its mtime and, for files, its bytes."""
    paths = [root, *sorted(root.rglob("*"))]
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in paths}


def _writable(path: Path) -> bool:
    try:
        (path / ".probe").touch()
    except OSError:
        return False
    (path / ".probe").unlink()
    return True


@contextmanager
def read_only(path: Path):
    """`chmod -R a-w path`; as root, for whom modes do not stop writes, the immutable flag
    (`chattr -R +i`, ext4/xfs) as well; skips the test where neither makes it read-only."""
    paths = [path, *path.rglob("*")]
    immutable = False
    try:
        for p in paths:
            p.chmod(p.stat().st_mode & ~0o222)
        if _writable(path) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True).returncode == 0
        if _writable(path) or os.access(path, os.W_OK):
            pytest.skip("cannot make a directory read-only here (root, and no chattr +i on this file system)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-R", "-i", str(path)], check=True)
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


def test_refused_rerun_leaves_the_finished_run_dir_untouched(finished, tmp_path, cli):
    run_dir, overrides = finished
    d = copy_of(run_dir, tmp_path / "run")
    before = snapshot(d)
    proc = cli(*overrides, "trainer.lr=0.02", f"hydra.run.dir={d}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {d} holds a completed run of a different config (trainer.lr: 0.01 -> 0.02); pass "
        "resume=never to replace it, or use another run directory"]
    assert snapshot(d) == before  # .hydra/, train.log, run.lock: not a byte, not a timestamp


def test_completed_read_only_run_is_skipped_without_writing(finished, tmp_path, cli):
    run_dir, overrides = finished
    d = copy_of(run_dir, tmp_path / "run")
    with read_only(d):
        before = snapshot(d)
        proc = cli(*overrides, f"hydra.run.dir={d}")
        assert proc.returncode == 0, proc.stderr
        assert f"skipping {d}: completed with the same config" in proc.stdout
        assert snapshot(d) == before


def test_read_only_unfinished_run_dir_is_one_line_exit_2(finished, tmp_path, cli):
    _, overrides = finished
    d = tmp_path / "run"
    d.mkdir()
    with read_only(d):
        proc = cli(*overrides, "seed=1", f"hydra.run.dir={d}")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot write the run directory {d} (")
    assert line.endswith("make it writable, or pick another one (hydra.run.dir / hydra.sweep.dir)")
    assert list(d.iterdir()) == []


def test_sweep_goes_on_past_a_read_only_run_dir(finished, tmp_path, cli):
    """The first job's directory is read-only: it fails with one logged line, and the second
    job (complete, skipped) still runs; the sweep then exits 1, as a sweep with a failed job does."""
    run_dir, overrides = finished
    sweep = tmp_path / "sweep"
    (sweep / "seed1").mkdir(parents=True)
    copy_of(run_dir, sweep / "seed0")
    with read_only(sweep / "seed1"):
        proc = cli("-m", *overrides, "seed=1,0", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"cannot write the run directory {sweep / 'seed1'}" in out
    assert f"skipping {sweep / 'seed0'}: completed with the same config" in out
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot write the run directory {sweep / 'seed1'}")
