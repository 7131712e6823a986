"""Checkpoints of a fine-tuning run: written atomically, resumed bit for bit.

`checkpoint.pt` in the run directory holds everything a run changes: the `Finetuner` state
(model, optimizer, scheduler, iteration, each regularizer's `state_dict`), the state of every
random generator (python, numpy, torch CPU, CUDA), the metrics rows so far, the stage-1
diagnostics and the resolved config it was made from. The data stream is a pure function of
(seed, iteration), so the iteration is its position. It also carries the run's time so far (its
`wall_time_s` at the save, and the trainer's `finetune_time_s`) and how many attempts made it, so
a resumed run's result counts the earlier attempts up to their last checkpoint, not only its own.

It is written (temporary file, fsync, rename: `tred.io.atomic_write`) at the end of stage 1,
every `trainer.checkpoint_every` iterations, at the end of fine-tuning, and when SIGTERM /
SIGINT arrive during fine-tuning. A process killed while writing leaves only a stray
`.checkpoint.pt.*.tmp`; the previous checkpoint stays whole and is the resume point.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from tred.errors import ConfigError
from tred.io import atomic_write, remove_stray_temps
from tred.schema import schema_defaults

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
FORMAT = 1
# Keys that do not change what a run computes: they may differ between a checkpoint and its resume
# (regularizer_overrides, method_overrides: their effect is in `regularizer.*`, which is compared).
OPERATIONAL_KEYS = ("resume", "lock_wait_s", "cache_dir", "logger", "regularizer_overrides", "method_overrides",
                    "weights_note", "reuse_from",
                    "trainer.checkpoint_every", "trainer.keep_checkpoint", "trainer.num_workers",
                    "trainer.device", "trainer.threads", "dataset.root", "dataset.download")

# Keys that choose what a finished training is scored on, not what it trains: a table run may adopt
# the final checkpoint of a tuning run that differs only in these (and in operational keys other
# than ADOPTION_COMPARED), its training images compared by digest (`Checkpointer.adopt`).
# weight_scale: the weights it scales are compared as the values the runs used (regularizer.*).
EVAL_ONLY_KEYS = ("sweep_name", "weight_scale", "dataset.validation", "dataset.val_pool", "dataset.val_fraction",
                  "trainer.eval_batch_size")
# Operational for a resume (the same run goes on), compared for an adoption: they change the arithmetic.
ADOPTION_COMPARED = ("trainer.device", "trainer.threads")

# Keys added later whose default does *not* keep the old behaviour: a config without them is a
# different config (runs made before trainer.kernels existed were native, the default is portable).
NOT_OLD_BEHAVIOUR = ("trainer.kernels",)


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _under(key: str, names) -> bool:
    return any(key == o or key.startswith(o + ".") for o in names)


def config_diff(old: dict, new: dict, adoption: bool = False) -> list[str]:
    """`key: old -> new` for every result-determining key that differs (operational keys ignored;
    `adoption`: also the evaluation-only keys, but not ADOPTION_COMPARED).

    A key the old config lacks is no difference when the new value is the schema default: a
    setting added later whose default keeps the old behaviour does not invalidate finished runs.
    """
    a, b, defaults = flatten(old), flatten(new), flatten(schema_defaults())
    if adoption:
        free = lambda k: (_under(k, EVAL_ONLY_KEYS)  # noqa: E731
                          or (_under(k, OPERATIONAL_KEYS) and not _under(k, ADOPTION_COMPARED)))
    else:
        free = lambda k: _under(k, OPERATIONAL_KEYS)  # noqa: E731
    added = lambda k: k not in a and k not in NOT_OLD_BEHAVIOUR and k in defaults and b.get(k) == defaults[k]  # noqa: E731
    keys = sorted(k for k in a.keys() | b.keys()
                  if not free(k) and not added(k) and a.get(k, "<unset>") != b.get(k, "<unset>"))
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys]


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Saves and restores the checkpoint of one run directory for one resolved config (a dict)."""

    def __init__(self, run_dir: str | Path, config: dict, every: int, max_iters: int):
        self.path = Path(run_dir) / CHECKPOINT
        self.config, self.every, self.max_iters = config, int(every), int(max_iters)
        self.saved_at: int | None = None
        # The run's clock: this attempt's time since the Checkpointer was made, plus the earlier
        # attempts' time up to the checkpoint resumed from (`load`); the lost tail after an
        # attempt's last checkpoint is not known, and not counted.
        self.started, self.wall_before, self.attempts = time.perf_counter(), 0.0, 1
        self.adopted: dict | None = None  # `adopt`: which run's training this run took over

    def wall_time_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def remove_stray_temps(self) -> None:
        """Temporary files of writes killed half-way (safe: the caller holds the run lock)."""
        remove_stray_temps(self.path)

    def clear(self) -> None:
        self.remove_stray_temps()
        self.path.unlink(missing_ok=True)

    def load(self) -> dict | None:
        """The checkpoint to resume from, None if there is none; refuses one from another config."""
        self.remove_stray_temps()
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - not written by us (atomic writes never leave half a file)
            raise ConfigError(f"checkpoint {self.path} is unreadable ({type(exc).__name__}); "
                              "delete it or pass resume=never to start over") from None
        diff = config_diff(state.get("config", {}), self.config)
        if diff:
            raise ConfigError(
                f"{self.path} was made with a different config ({'; '.join(diff)}); refusing to "
                "resume: pass resume=never to start over, or use another run directory")
        # Checkpoints written before the clock was carried lack these: their earlier time is lost.
        self.wall_before = float(state.get("wall_time_s", 0.0))
        self.attempts = int(state.get("attempts", 1)) + 1
        return state

    def adopt(self, sweep: str | Path) -> dict | None:
        """The final checkpoint of a finished run under `sweep` whose training is this run's: its
        config differs only in EVAL_ONLY_KEYS and operational keys (a tuning run scored on held-out
        training images, kept with trainer.keep_checkpoint=true, for a table run of the same
        weights and seed). None when there is none. The caller must still compare the training
        images (`train_digest`) and call `forget_adoption` if they differ. The clock carries the
        adopted run's time, and `adopted` says which run it was."""
        sweep = Path(sweep)
        if not sweep.is_dir():
            return None
        for saved in sorted(sweep.rglob("config.yaml")):
            d = saved.parent
            if d == self.path.parent or not (d / CHECKPOINT).is_file() or ".hydra" in d.parts:
                continue
            try:
                other = OmegaConf.to_container(OmegaConf.load(saved))
                if config_diff(other, self.config, adoption=True):
                    continue
                state = torch.load(d / CHECKPOINT, map_location="cpu", weights_only=False)
            except Exception:  # noqa: BLE001 - a candidate that cannot be read is not adopted
                continue
            if int(state.get("iteration", -1)) < self.max_iters or config_diff(state.get("config", {}), self.config,
                                                                            adoption=True):
                continue
            self.wall_before = float(state.get("wall_time_s", 0.0))
            self.attempts = int(state.get("attempts", 1)) + 1
            self.adopted = {"trained_in": f"{state['config'].get('sweep_name')}/{d.relative_to(sweep).as_posix()}",
                            "trained_time_s": self.wall_before}
            log.info("adopting the finished training of %s (same training config; scored here on its own split)", d)
            return state
        return None

    def forget_adoption(self) -> None:
        """Train from the start after all (the adopted run trained on other images)."""
        self.adopted, self.wall_before, self.attempts = None, 0.0, 1

    def save(self, trainer, metrics, info: dict) -> None:
        state = {"format": FORMAT, "config": self.config, "iteration": trainer.iteration,
                 "trainer": trainer.state_dict(), "rng": rng_state(),
                 "metrics": list(metrics.rows), "info": dict(info),
                 "wall_time_s": self.wall_time_s(), "attempts": self.attempts}
        atomic_write(self.path, lambda fh: torch.save(state, fh), mode="wb")
        self.saved_at = trainer.iteration
        log.debug("checkpoint at iteration %d: %s", trainer.iteration, self.path)

    @staticmethod
    def restore(state: dict, trainer, metrics) -> dict:
        """Put `state` back into `trainer`, the generators and `metrics`; returns stage-1 info."""
        trainer.load_state_dict(state["trainer"])
        set_rng_state(state["rng"])
        metrics.restore(state["metrics"])
        log.info("resumed from %s at iteration %d", CHECKPOINT, state["iteration"])
        return dict(state["info"])

    def on_step(self, stop, metrics, info: dict):
        """`Finetuner.run(on_step=...)`: periodic and final checkpoints, and a checkpoint on stop."""
        def after_step(trainer) -> None:
            it = trainer.iteration
            due = (self.every > 0 and it % self.every == 0) or it >= self.max_iters
            if due or stop.received is not None:
                self.save(trainer, metrics, info)
            stop.raise_if_stopped(it)
        return after_step
