"""One process per run directory (a `flock` on `run.lock`), and stop signals turned into checkpoints.

- `RunLock(path, wait_s)`: an exclusive `fcntl.flock` on a lock file. `wait_s=0` refuses at once
  when another process holds it, `wait_s>0` waits up to that many seconds, `wait_s<0` waits for
  ever. The kernel drops the lock when its holder dies (even by SIGKILL), so a stale lock file
  never blocks anyone. The holder's pid and host are written into the file for the message.
- `StopSignals`: while the fine-tune loop runs, SIGTERM / SIGINT only set a flag; the loop then
  writes a checkpoint at the end of the current step and raises `RunInterrupted`. Outside the
  loop (stage 1, evaluation) the signal raises `RunInterrupted` at once: the last checkpoint on
  disk is the resume point. A second signal while a stop is pending also raises at once.
  A signal that someone else already handles (submitit ignores SIGTERM and requeues on
  SIGUSR2) is left to them.

This module imports no torch, so a light process can take or probe a lock.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading
import time
from pathlib import Path

from tred.errors import TredError

LOCK_POLL_S = 0.1  # how often a waiting process retries the lock


class RunLockedError(TredError):
    """Another process holds the lock of this run directory (or cache entry)."""


class RunInterrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal; it is incomplete (no result.json), not failed."""

    def __init__(self, signum: int, iteration: int | None = None):
        self.signum, self.iteration = signum, iteration
        where = f" at iteration {iteration}" if iteration is not None else ""
        super().__init__(f"interrupted by {signal.Signals(signum).name}{where}")


class RunLock:
    """Exclusive lock on `path` for the lifetime of the `with` block."""

    def __init__(self, path: str | os.PathLike, wait_s: float = 0.0, what: str = "run directory"):
        self.path, self.wait_s, self.what = Path(path), float(wait_s), what
        self._fh = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        deadline = None if self.wait_s < 0 else time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    fh.close()
                    waited = f" after waiting {self.wait_s:g} s" if self.wait_s > 0 else ""
                    raise RunLockedError(
                        f"{self.what} {self.path.parent} is in use by {self._holder()}{waited}; "
                        "wait for it to finish, use another directory, or set lock_wait_s "
                        "(seconds to wait, -1 = for ever)") from None
                time.sleep(LOCK_POLL_S)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()


class StopSignals:
    """Turns SIGTERM / SIGINT into `RunInterrupted`, deferred to a step boundary while `deferring`."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self.deferring = False
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.deferring and self.received is None:
            self.received = signum  # the loop checkpoints at the end of this step, then stops
            return
        raise RunInterrupted(signum)

    def raise_if_stopped(self, iteration: int | None = None) -> None:
        if self.received is not None:
            raise RunInterrupted(self.received, iteration)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            for s in self.SIGNALS:
                if signal.getsignal(s) in (signal.SIG_DFL, signal.default_int_handler):
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
