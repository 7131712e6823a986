"""Where a result came from: the code's git commit, the library versions and the CPU.

Recorded in result.json for the reader (`code_version`, `versions`, `machine`); informational only: a
run's identity (what resume compares) is its config.yaml, never these. Nothing here may fail
a run: each value is None when it cannot be found.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy
import torch

PACKAGE = Path(__file__).resolve().parent
GIT_TIMEOUT_S = 10


def _git(where: Path, *args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # status must not take index.lock (jobs run side by side)
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=True,
                          timeout=GIT_TIMEOUT_S, env=env).stdout.strip()


def code_version(where: Path = PACKAGE) -> dict | None:
    """{"commit": sha, "dirty": uncommitted changes (tracked or untracked, not ignored)} of the
    git checkout whose tracked files include `where`; None when there is none (an installed
    package, a venv inside a checkout, no git)."""
    try:
        _git(where, "ls-files", "--error-unmatch", "--", ".")  # tracked here, not merely inside a repo
        return {"commit": _git(where, "rev-parse", "HEAD"), "dirty": bool(_git(where, "status", "--porcelain"))}
    except Exception:  # noqa: BLE001 - git missing, not a checkout, timeout: provenance is optional
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except Exception:  # noqa: BLE001
        return None


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": _version("torchvision"),
            "timm": _version("timm"), "numpy": numpy.__version__}


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _widest_isa(flags: str | None) -> str | None:
    """The widest x86 vector instruction set the CPU offers (what `native` kernels may use)."""
    have = set((flags or "").split())
    return next((name for flag, name in (("avx512f", "AVX512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse2", "SSE2"))
                 if flag in have), None)


def _cpu_model() -> str | None:
    return _cpuinfo("model name") or platform.processor() or None


def machine() -> dict:
    """The CPU a run computed on: its model, vendor, the widest vector instruction set it offers
    (`cpu_offers`) and the one torch's ATen kernels chose (`cpu_capability`, e.g. AVX512; AVX2 under
    trainer.kernels=portable). Kernels for different instruction sets may round sums
    differently, so a run that is bit-exact on one machine need not be on another: a result that
    does not reproduce elsewhere is first compared here."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = None
    out = {"arch": platform.machine() or None, "cpu": _cpu_model(), "vendor": _cpuinfo("vendor_id"),
           "cpu_offers": _widest_isa(_cpuinfo("flags")), "cpu_capability": capability}
    try:
        if torch.cuda.is_available():  # the kernel mode pins CPU code paths only: name what ran instead
            out["gpu"] = {"name": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                          "cudnn": torch.backends.cudnn.version()}
    except Exception:  # noqa: BLE001 - provenance never fails a run
        pass
    return out


def provenance() -> dict:
    """The result.json keys `code_version`, `versions` and `machine`."""
    return {"code_version": code_version(), "versions": versions(), "machine": machine()}
