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


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict:
    """The CPU a run computed on: its model and the vector instruction set torch's kernels chose
    (`cpu_capability`, e.g. AVX512). Kernels for different instruction sets may round sums
    differently, so a run that is bit-exact on one machine need not be on another: a result that
    does not reproduce elsewhere is first compared here."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = None
    return {"arch": platform.machine() or None, "cpu": _cpu_model(), "cpu_capability": capability}


def provenance() -> dict:
    """The result.json keys `code_version`, `versions` and `machine`."""
    return {"code_version": code_version(), "versions": versions(), "machine": machine()}
