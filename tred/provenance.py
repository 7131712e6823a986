"""Where a result came from: the code's git commit and the library versions.

Recorded in result.json for the reader (`code_version`, `versions`); informational only: a
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


def provenance() -> dict:
    """The result.json keys `code_version` and `versions`."""
    return {"code_version": code_version(), "versions": versions()}
