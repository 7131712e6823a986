"""The CPU kernel mode: which instruction-set code paths torch's CPU kernels may take.

The same run gives different numbers on different CPUs because three libraries inside torch pick
their code by CPU, and each rounds sums in its own order: ATen's own kernels (reductions,
BatchNorm, element-wise; `ATEN_CPU_CAPABILITY`), oneDNN's convolutions (`ONEDNN_MAX_CPU_ISA`) and
MKL's BLAS / LAPACK (`MKL_CBWR`). Each changes a 60-step run's accuracy by tenths of a point to
points (docs/reliability.md, "Numbers that travel", has the measurements).

- `portable` pins all three, before torch initializes, to code paths every x86-64 CPU of the last
  decade runs: ATen and oneDNN at AVX2, MKL at its `COMPATIBLE` branch (SSE2 without the
  approximate rcpps / rsqrtps, whose results differ between CPU vendors) in strict mode (results
  independent of memory alignment); oneDNN's fp32 math is held strict. A value already in the
  environment is overridden, and the record says which.
- `native` leaves the environment as it is (torch picks the widest code path) and records what
  was in force.

This module does not import torch: `pin` must run before torch is first imported in a process
(scripts/train.py calls it before importing the training code; sweep workers run that same path).
`check` (after the import) confirms that the pin took effect: torch imported earlier in the same
process with other settings is an error, not a silent native run. On other architectures (ARM)
and for GPU kernels the mode does not apply, and the record says so.
"""

from __future__ import annotations

import os
import platform
import sys

from tred.errors import ConfigError

MODES = ("portable", "native")
# What `portable` sets, and what each pins.
PORTABLE = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorized kernels: 8-lane AVX2, not 16-lane AVX-512
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT convolutions
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",  # oneDNN's default: no implicit bf16 / tf32 down-conversion
    "MKL_CBWR": "COMPATIBLE,STRICT",  # MKL's conditional numerical reproducibility
}
# Also recorded (read by the same libraries; portable's values take precedence over them).
RECORDED = (*PORTABLE, "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def _environment() -> dict:
    return {var: os.environ[var] for var in RECORDED if var in os.environ}


def applies() -> bool:
    return platform.machine().lower() in X86


def pin(mode: str) -> dict:
    """Set the environment of `mode` for torch's CPU kernels; returns the record for result.json
    (`kernels`), completed by `check` once torch is imported. Call before torch is imported."""
    if mode not in MODES:
        raise ConfigError(f"trainer.kernels={mode!r}; valid: {', '.join(MODES)}")
    record: dict = {"mode": mode, "applies": True, "overridden": {}}
    if mode == "portable" and not applies():
        record.update(applies=False, note=f"portable pins x86-64 code paths; on {platform.machine()} it does not "
                                          "apply: the environment was left as it is (recorded below)")
    elif mode == "portable":
        changed = {var: os.environ.get(var) for var, value in PORTABLE.items() if os.environ.get(var) != value}
        if changed and "torch" in sys.modules:
            raise KernelsError(
                "torch was initialized in this process before trainer.kernels=portable could set "
                f"{', '.join(changed)}; start a new process (scripts/train.py does this for you), or set "
                "them before importing torch (tred.kernels.pin('portable'))")
        record["overridden"] = {var: old for var, old in changed.items() if old is not None}
        os.environ.update(PORTABLE)
    record["environment"] = _environment()
    return record


def check(record: dict, device: str = "cpu") -> dict:
    """After torch is imported: the capability ATen's dispatch really uses, the thread count, and
    whether the mode applies to this run's device. Raises when portable did not take effect."""
    import torch

    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = None
    record = {**record, "cpu_capability": capability, "threads": torch.get_num_threads()}
    if not str(device).startswith("cpu"):
        record.update(applies=False, note=f"the kernel mode pins CPU code paths; this run computes on {device} "
                                          "(recorded in result.json `machine`: the GPU, CUDA and cuDNN versions)")
    elif record["mode"] == "portable" and record["applies"] and capability not in (None, "AVX2"):
        raise KernelsError(
            f"trainer.kernels=portable, but torch's CPU kernels use {capability}: torch was imported in this "
            "process before the mode was set; start a new process (scripts/train.py does this for you)")
    return record


def settings(kernels: dict | None, machine: dict | None = None) -> str:
    """One line naming what determines a run's floating-point path: the tables pool only runs
    that agree on it. Runs made before the mode existed were native (`unrecorded`)."""
    if not kernels:
        capability = (machine or {}).get("cpu_capability") or "unknown"
        return f"native {capability} (unrecorded)"
    threads = kernels.get("threads")
    suffix = f", {threads} thread{'s' if threads != 1 else ''}" if threads is not None else ""
    if not kernels.get("applies", True):
        return f"{kernels['mode']} (does not apply: {kernels.get('cpu_capability') or 'not x86'}){suffix}"
    if kernels["mode"] == "portable":
        return f"portable (ATen {PORTABLE['ATEN_CPU_CAPABILITY']}, oneDNN {PORTABLE['ONEDNN_MAX_CPU_ISA']}, " \
               f"MKL {PORTABLE['MKL_CBWR']}){suffix}"
    env = kernels.get("environment") or {}
    pinned = ", ".join(f"{k}={v}" for k, v in sorted(env.items()) if k in PORTABLE)
    return f"native {kernels.get('cpu_capability') or 'unknown'}{f' ({pinned})' if pinned else ''}{suffix}"


class KernelsError(ConfigError):
    """The kernel mode could not be put in force in this process."""
