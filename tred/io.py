"""Atomic file writes: write a temporary file in the same folder, fsync, rename.

A write either replaces the file whole or leaves it as it was. Its temporary file is removed
on any exception, and a termination signal with its default action (SIGTERM, SIGHUP: the
process dies without running any Python; SIGINT: KeyboardInterrupt) waits until the write has
finished, then takes effect: only SIGKILL or a crash can leave a stray `.<name>.*.tmp`, which
readers never look at (they open the final names) and `remove_stray_temps` deletes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TERMINATING = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Delay termination signals that still have their default handler until the block ends.

    Handlers installed by others (the run's `StopSignals`, submitit) are left alone. A second
    signal of the same kind takes effect at once (a stuck write can still be interrupted).
    Only in the main thread, where `signal.signal` works.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous: dict = {}

    def hold(signum, _frame) -> None:
        if signum in pending:  # asked twice: stop now
            signal.signal(signum, previous.pop(signum))
            signal.raise_signal(signum)
        pending.append(signum)

    for s in TERMINATING:
        if signal.getsignal(s) in (signal.SIG_DFL, signal.default_int_handler):
            previous[s] = signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for s in dict.fromkeys(pending):
            if s in previous:
                signal.raise_signal(s)  # the default action, now that the write is complete or undone


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_signals():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            try:
                fh = os.fdopen(fd, mode)
            except BaseException:
                os.close(fd)
                raise
            with fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def remove_stray_temps(path: str | os.PathLike) -> None:
    """Temporary files that killed writes of `path` left (only safe while no one else writes it)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def write_json(path, obj: Any) -> None:
    atomic_write(path, lambda fh: json.dump(obj, fh, indent=2, sort_keys=True, default=str))


def utc_stamp(epoch: float | None = None) -> str:
    """A moment (now, or `epoch` seconds) in UTC to the second, ISO 8601: result.json's `finished`."""
    moment = datetime.datetime.now(datetime.timezone.utc) if epoch is None else \
        datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def read_json(path) -> Any:
    with open(path) as fh:
        return json.load(fh)
