"""trainer.kernels: `portable` gives the same numbers whatever code path the CPU offers torch,
`native` does not (tred/kernels.py, docs/reliability.md "Numbers that travel").

Two machines are stood in for by one CPU with AVX-512 started under ATEN_CPU_CAPABILITY=avx512 and
=avx2: ATen's kernels then take the code paths of an AVX-512 and of an AVX2 machine."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tred import kernels
from tred.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")
# A short run that still does a few hundred thousand float reductions: digits, 6 steps of batch 16.
SHORT = ["dataset=digits", "dataset.test_per_class=20", "trainer.max_iters=6", "trainer.batch_size=16",
         "trainer.log_every=1", "trainer.threads=1", "logger=csv"]


def clean_env(**extra) -> dict:
    """This process's environment without the pins conftest applied (a fresh shell's), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in kernels.RECORDED}
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **extra}


def capability_under(value: str) -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env=clean_env(ATEN_CPU_CAPABILITY=value), capture_output=True, text=True, check=True)
    return out.stdout.strip()


def numbers(node, prefix="") -> dict:
    """Every number of a result.json, by its key path, without timings and the kernels record."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("kernels", "machine") or k.endswith("_s") or "time" in k:
                continue
            out.update(numbers(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node} if isinstance(node, (int, float)) and not isinstance(node, bool) else {}


def losses(run_dir: Path) -> list[tuple]:
    """Every loss-like column of metrics.csv, row by row (the throughput column left out)."""
    with open(run_dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [tuple((k, v) for k, v in r.items() if k != "imgs_per_s") for r in rows]


def short_run(tmp: Path, name: str, mode: str, aten: str, sweep: bool = False) -> Path:
    """One SHORT run in a new process started under ATEN_CPU_CAPABILITY=`aten`; its run directory.
    `sweep`: through the parallel (joblib) launcher, so the pin happens in a sweep worker."""
    out = tmp / name
    args = [*SHORT, f"trainer.kernels={mode}", f"cache_dir={tmp / 'cache' / name}"]
    cmd = [sys.executable, TRAIN, *(["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=1",
                                     f"hydra.sweep.dir={out}", "seed=0"] if sweep else [f"hydra.run.dir={out}"]),
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=clean_env(ATEN_CPU_CAPABILITY=aten), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.rglob("result.json")
    return result.parent


@pytest.fixture(scope="module")
def avx512():
    if capability_under("avx512") != "AVX512":
        pytest.skip("this CPU has no AVX-512: the two code paths the test compares are the same here")


def test_portable_is_bit_identical_across_code_paths_and_native_is_not(tmp_path, avx512):
    jobs = [("native512", "native", "avx512", False), ("native2", "native", "avx2", False),
            ("portable512", "portable", "avx512", True), ("portable2", "portable", "avx2", False)]
    with ThreadPoolExecutor(2) as pool:
        dirs = dict(zip([j[0] for j in jobs], pool.map(lambda j: short_run(tmp_path, *j), jobs)))
    res = {name: json.loads((d / "result.json").read_text()) for name, d in dirs.items()}

    # native: each process took the code path it was offered, and the numbers moved
    assert res["native512"]["kernels"]["cpu_capability"] == "AVX512"
    assert res["native2"]["kernels"]["cpu_capability"] == "AVX2"
    assert losses(dirs["native512"]) != losses(dirs["native2"])
    # portable: the sweep worker overrode the environment's avx512, said so, and every loss and number agrees
    assert res["portable512"]["kernels"]["overridden"] == {"ATEN_CPU_CAPABILITY": "avx512"}
    assert res["portable512"]["kernels"]["environment"]["ATEN_CPU_CAPABILITY"] == "avx2"
    log = next(dirs["portable512"].glob("*.log")).read_text()
    assert "ATEN_CPU_CAPABILITY=avx512 from the environment overridden with avx2" in log
    assert res["portable2"]["kernels"]["overridden"] == {}
    assert losses(dirs["portable512"]) == losses(dirs["portable2"])
    a, b = numbers(res["portable512"]), numbers(res["portable2"])
    assert a == b and "test_acc" in a and len(a) >= 8
    assert kernels.settings(res["portable512"]["kernels"]) == kernels.settings(res["portable2"]["kernels"])


def test_pin_portable_sets_the_environment_and_records_what_it_overrode(monkeypatch):
    for var in kernels.PORTABLE:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MKL_CBWR", "AVX512")
    monkeypatch.delitem(sys.modules, "torch")  # as if torch were not imported yet (restored after)
    record = kernels.pin("portable")
    assert record["overridden"] == {"MKL_CBWR": "AVX512"}
    assert {k: os.environ[k] for k in kernels.PORTABLE} == kernels.PORTABLE == {
        k: record["environment"][k] for k in kernels.PORTABLE}


def test_native_leaves_the_environment_and_records_it(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    record = kernels.pin("native")
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    assert record["environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and record["overridden"] == {}
    checked = kernels.check(record, "cpu")
    assert checked["threads"] >= 1 and checked["cpu_capability"]
    assert kernels.settings(checked).startswith(f"native {checked['cpu_capability']} (")


def test_pinning_after_torch_started_with_other_settings_is_refused(monkeypatch):
    import torch  # this process's torch started under conftest's portable pin

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    with pytest.raises(kernels.KernelsError, match="torch was initialized in this process before "
                                                   "trainer.kernels=portable could set ATEN_CPU_CAPABILITY"):
        kernels.pin("portable")
    # a portable record whose pin came too late: ATen reports another capability
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with pytest.raises(kernels.KernelsError, match="torch's CPU kernels use AVX512"):
        kernels.check({"mode": "portable", "applies": True, "overridden": {}}, "cpu")


def test_unknown_mode_and_where_the_mode_does_not_apply(monkeypatch):
    with pytest.raises(ConfigError, match="trainer.kernels='fast'; valid: portable, native"):
        kernels.pin("fast")
    gpu = kernels.check({"mode": "portable", "applies": True, "overridden": {}}, "cuda:0")
    assert gpu["applies"] is False and "pins CPU code paths; this run computes on cuda:0" in gpu["note"]
    monkeypatch.setattr(kernels.platform, "machine", lambda: "aarch64")
    arm = kernels.pin("portable")
    assert arm["applies"] is False and "on aarch64 it does not apply" in arm["note"]
    assert kernels.settings({**arm, "cpu_capability": None, "threads": 1}) == \
        "portable (does not apply: not x86), 1 thread"


def test_settings_name_what_decides_the_numbers():
    portable = {"mode": "portable", "applies": True, "cpu_capability": "AVX2", "threads": 1}
    assert kernels.settings(portable) == \
        "portable (ATen avx2, oneDNN AVX2, MKL COMPATIBLE,STRICT), 1 thread"
    assert kernels.settings({**portable, "threads": 2}).endswith(", 2 threads")
    assert kernels.settings(None, {"cpu_capability": "AVX512"}) == "native AVX512 (unrecorded)"
    assert kernels.settings(None) == "native unknown (unrecorded)"
