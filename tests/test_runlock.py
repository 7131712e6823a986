"""tred.runlock: one process per run directory (RunLock); submitit's requeue signal waits for the
step's checkpoint (StopSignals); workers of a parallel sweep stop when the sweep's process is gone
(ParentWatch).

In the ParentWatch tests a real parent process runs jobs through joblib (loky workers, as hydra/launcher=parallel does),
then kills itself with SIGKILL or SIGTERM while two jobs run and two wait in the queue. Each job
is a stand-in for a run: a step loop under `StopSignals` that "checkpoints" when told to stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_cfg
from tred.run import run
from tred.runlock import ParentWatch, RunInterrupted, RunLock, RunLockedError, StopSignals

HOLDER = ("import sys, time\nfrom tred.runlock import RunLock\n"
          "with RunLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(float(sys.argv[2]))\n")


def hold_lock(path, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_on_run_dir_refuses(tmp_path):
    run_dir = tmp_path / "run"
    holder = hold_lock(run_dir / "run.lock", 60)
    try:
        with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid} on"):
            run(make_cfg(tmp_path), run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == ["run.lock"]  # nothing written
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock, the stale file blocks no one
        holder.wait()
    with RunLock(run_dir / "run.lock", wait_s=0):
        pass


def test_waiting_process_gets_the_lock_after_the_first(tmp_path):
    holder = hold_lock(tmp_path / "run.lock", 0.5)
    t0 = time.monotonic()
    with RunLock(tmp_path / "run.lock", wait_s=-1):
        assert time.monotonic() - t0 >= 0.4  # we only got it once the holder let go
    holder.wait()


@pytest.fixture
def submitit_like_handler():
    """A Python SIGUSR2 handler that requeues and exits, as submitit installs in its jobs."""
    calls = []

    def requeue(signum, frame):
        calls.append(signum)
        raise SystemExit(-1)

    before = signal.signal(signal.SIGUSR2, requeue)
    yield calls
    signal.signal(signal.SIGUSR2, before)


def test_requeue_signal_waits_for_the_end_of_the_step(submitit_like_handler):
    with StopSignals() as stop:
        stop.deferring = True  # fine-tuning
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.received == signal.SIGUSR2 and submitit_like_handler == []  # the step goes on
        with pytest.raises(SystemExit):  # after the checkpoint: submitit requeues and exits
            stop.raise_if_stopped(7)
        assert submitit_like_handler == [signal.SIGUSR2]
        stop.deferring = False  # stage 1 or evaluation: at once
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGUSR2)
    assert submitit_like_handler == [signal.SIGUSR2] * 2
    assert signal.getsignal(signal.SIGUSR2).__name__ == "requeue"  # restored


def test_sigusr2_without_a_handler_is_left_alone():
    before = signal.getsignal(signal.SIGUSR2)
    with StopSignals():
        assert signal.getsignal(signal.SIGUSR2) == before
    with StopSignals() as stop:  # SIGTERM still stops the run
        stop.deferring = True
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(RunInterrupted, match="SIGTERM at iteration 3"):
            stop.raise_if_stopped(3)

SWEEP = textwrap.dedent('''
    import os, signal, sys, threading, time
    from pathlib import Path
    from joblib import Parallel, delayed

    OUT = Path(sys.argv[1])

    def job(i):
        from tred.runlock import ParentWatch, RunInterrupted, StopSignals
        watch = ParentWatch.for_worker(poll_s=0.05)
        (OUT / f"started{i}").write_text(str(os.getpid()))
        try:
            with watch.running(), StopSignals() as stop:
                stop.deferring = True
                for step in range(400):  # 20 s: far longer than the test waits
                    time.sleep(0.05)
                    if stop.received is not None:
                        (OUT / f"checkpoint{i}").write_text(str(step))
                        stop.raise_if_stopped(step)
        except RunInterrupted:
            if watch.orphaned.is_set():
                os._exit(143)  # as scripts/train.py does
            raise
        (OUT / f"finished{i}").write_text("")

    def kill_self_when_running():
        while len(list(OUT.glob("started*"))) < 2:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))

    if __name__ == "__main__":
        threading.Thread(target=kill_self_when_running, daemon=True).start()
        Parallel(n_jobs=2)(delayed(job)(i) for i in range(4))
''')


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's (init's) wait is pending


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_workers_checkpoint_and_exit_when_the_parent_dies(tmp_path, how):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), how], timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == -getattr(signal, how)
    workers = [int((tmp_path / f"started{i}").read_text()) for i in range(2)]
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "orphaned workers still running"
    assert sorted(p.name for p in tmp_path.glob("checkpoint*")) == ["checkpoint0", "checkpoint1"]
    assert not list(tmp_path.glob("finished*"))
    assert not (tmp_path / "started2").exists() and not (tmp_path / "started3").exists(), "queued jobs started"


def test_no_watch_outside_a_worker():
    # a run from a shell (or under nohup) must not stop when its parent goes
    assert ParentWatch.for_worker() is None
