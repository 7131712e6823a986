"""One process per run directory (a `flock` on `run.lock`), and stop signals turned into checkpoints.

- `RunLock(path, wait_s)`: an exclusive `fcntl.flock` on a lock file. `wait_s=0` refuses at once
  when another process holds it, `wait_s>0` waits up to that many seconds, `wait_s<0` waits for
  ever. The kernel drops the lock when its holder dies (even by SIGKILL), so a stale lock file
  never blocks anyone. The holder's pid and host are written into the file for the message.
- `StopSignals`: while the fine-tune loop runs, SIGTERM / SIGINT only set a flag; the loop then
  writes a checkpoint at the end of the current step and raises `RunInterrupted`. Outside the
  loop (stage 1, evaluation) the signal raises `RunInterrupted` at once: the last checkpoint on
  disk is the resume point. A second signal while a stop is pending also raises at once.
  A signal that someone else already handles (submitit ignores SIGTERM) is left to them, except
  submitit's SIGUSR2 (pre-emption or time limit: it requeues the job and exits): during
  fine-tuning that waits for the end of the step and its checkpoint, then submitit's handler
  runs, so the requeued run resumes from that step instead of from the last periodic checkpoint.
- `ParentWatch`: in a worker process of the parallel launcher (joblib/loky), a thread that notices
  when the sweep's `-m` process is gone (SIGTERM or SIGKILL of the parent: the worker is
  re-parented) and stops the worker: a run in progress gets SIGTERM (checkpoint at the end of the
  step, as on Ctrl-C), then the process exits; an idle worker exits at once. Without it, orphaned
  workers finish their run, start queued ones and then idle for ever.

This module imports no torch, so a light process can take or probe a lock.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import socket
import threading
import time
from pathlib import Path

from tred.errors import TredError

LOCK_POLL_S = 0.1  # how often a waiting process retries the lock
PARENT_POLL_S = 1.0  # how often a worker checks that its parent is alive


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

    def acquire(self) -> RunLock:
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
    # Deferred like the above, then handed to the handler already installed (submitit's requeue).
    CHAINED = (signal.SIGUSR2,)

    def __init__(self):
        self.received: int | None = None
        self.deferring = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.deferring and self.received is None:
            self.received = signum  # the loop checkpoints at the end of this step, then stops
            return
        self._stop(signum, frame)

    def _stop(self, signum, frame=None, iteration: int | None = None) -> None:
        chained = self._previous.get(signum) if signum in self.CHAINED else None
        if callable(chained):
            chained(signum, frame)  # submitit: requeue, then SystemExit
        raise RunInterrupted(signum, iteration)

    def raise_if_stopped(self, iteration: int | None = None) -> None:
        if self.received is not None:
            self._stop(self.received, iteration=iteration)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            for s in self.SIGNALS:
                if signal.getsignal(s) in (signal.SIG_DFL, signal.default_int_handler):
                    self._previous[s] = signal.signal(s, self._handle)
            for s in self.CHAINED:
                if callable(signal.getsignal(s)):
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}


class ParentWatch:
    """Stops a worker process whose parent is gone. One per process: `ParentWatch.for_worker()`
    returns it (started on first use) in a multiprocessing/loky worker and None elsewhere (a run
    started from a shell keeps running when the shell goes, e.g. under nohup).

    `with watch.running():` marks a run in progress: when the parent dies then, the run gets
    SIGTERM (its `StopSignals` checkpoint and raise `RunInterrupted`) and `orphaned` is set, so
    the caller exits instead of taking the next job; outside it the process exits at once.
    """

    _instance: ParentWatch | None = None

    def __init__(self, poll_s: float = PARENT_POLL_S):
        self.parent, self.poll_s = os.getppid(), poll_s
        self.active = False
        self.orphaned = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tred-parent-watch", daemon=True)

    @classmethod
    def for_worker(cls, poll_s: float = PARENT_POLL_S) -> ParentWatch | None:
        if multiprocessing.parent_process() is None:
            return None
        if cls._instance is None:
            cls._instance = cls(poll_s)
            cls._instance._thread.start()
        return cls._instance

    def _watch(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(self.poll_s)
        self.orphaned.set()
        if self.active:
            os.kill(os.getpid(), signal.SIGTERM)  # the run checkpoints and stops; the caller then exits
        else:
            os._exit(128 + signal.SIGTERM)

    def running(self) -> _Running:
        return _Running(self)


class _Running:
    def __init__(self, watch: ParentWatch):
        self.watch = watch

    def __enter__(self) -> ParentWatch:
        self.watch.active = True
        if self.watch.orphaned.is_set():  # the parent went while this job was being dispatched
            os._exit(128 + signal.SIGTERM)
        return self.watch

    def __exit__(self, *exc) -> None:
        self.watch.active = False
