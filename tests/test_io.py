"""tred/io.py: an atomic write replaces the file whole or leaves it as it was; a SIGTERM during
the write waits for its end; a failed write removes its temp file and closes its descriptor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT
from tred.io import atomic_write, read_json, write_json

WRITER = ("import os, signal, sys\nfrom tred.io import atomic_write\n"
          "def write(fh):\n"
          "    if sys.argv[2] == 'after': fh.write('{\"status\": \"completed\"}')\n"
          "    os.kill(os.getpid(), signal.SIGTERM)  # default action: the process dies at once\n"
          "    if sys.argv[2] == 'before': fh.write('{\"status\": \"completed\"}')\n"
          "atomic_write(sys.argv[1], write)\nprint('unreachable')\n")


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigterm_during_an_atomic_write_leaves_no_temp_file(tmp_path, when):
    """A kill (SIGTERM, default action) inside the final write left a 0-byte .result.json.*.tmp;
    now the signal waits for the write to end, then takes effect: whole file, no temp file."""
    target = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(target), when], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == -signal.SIGTERM and "unreachable" not in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert read_json(target) == {"status": "completed"}


def test_failed_atomic_write_removes_its_temp_file_and_keeps_the_old_file(tmp_path):
    write_json(tmp_path / "result.json", {"v": 1})
    fds = len(os.listdir("/proc/self/fd"))

    def boom(fh):
        fh.write("{half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "result.json", boom)
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "result.json", boom, mode="not-a-mode")  # os.fdopen fails: fd closed too
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"] and read_json(tmp_path / "result.json") == {"v": 1}
    assert len(os.listdir("/proc/self/fd")) == fds  # no descriptor leaked
