"""One run, end to end: config -> data + models -> stage 1 -> fine-tune -> evaluate -> result.json.

`result.json` is written once, atomically, at the end: a run directory without it did not
finish; one with `status: failed` says why in `error`. `checkpoint.pt` makes a killed run
resumable (tred/engine/checkpoint.py); `run.lock` keeps one process per run directory.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tred.config import validate
from tred.data import build_data
from tred.engine.checkpoint import Checkpointer, config_diff
from tred.engine.evaluate import evaluate
from tred.engine.health import health_warnings
from tred.engine.loop import Finetuner
from tred.engine.metrics import MetricsLog
from tred.errors import ConfigError, DataError, OutputError
from tred.io import atomic_write, read_json, remove_stray_temps, utc_stamp, write_json
from tred.kernels import check as check_kernels
from tred.kernels import pin
from tred.kernels import settings as kernel_settings
from tred.loggers import build_sinks
from tred.methods import method_of_config
from tred.models import build_models, resolve_layers
from tred.provenance import provenance
from tred.regularizers import SetupContext, build_regularizers
from tred.runlock import RunLock, StopSignals

log = logging.getLogger(__name__)
RESULT, CONFIG, METRICS, LOCK = "result.json", "config.yaml", "metrics.csv", "run.lock"


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def completed_result(run_dir: Path, cfg: DictConfig) -> dict | None:
    """The result of a finished run of this config in `run_dir`, if there is one (reads only).

    A completed result of a different config is never overwritten silently: ConfigError.
    """
    res, saved = run_dir / RESULT, run_dir / CONFIG
    if not (res.is_file() and saved.is_file()):
        return None
    try:
        result = read_json(res)
    except (OSError, ValueError):
        return None
    if result.get("status") != "completed":
        return None
    diff = config_diff(OmegaConf.to_container(OmegaConf.load(saved)), OmegaConf.to_container(cfg, resolve=True))
    if diff:
        raise ConfigError(f"{run_dir} holds a completed run of a different config ({'; '.join(diff)}); "
                          "pass resume=never to replace it, or use another run directory")
    return result


def warn_if_failed(run_dir: Path) -> None:
    try:
        result = read_json(run_dir / RESULT)
    except (OSError, ValueError):
        return
    if isinstance(result, dict) and result.get("status") == "failed":
        log.warning("re-running %s: the previous attempt failed: %s", run_dir, result.get("error"))


def result_stub(cfg: DictConfig) -> dict:
    uses_tred = cfg.disentangle is not None
    return {
        "method": method_of_config(cfg),
        "dataset": cfg.dataset.label or cfg.dataset.name,
        "budget": cfg.dataset.budget,
        "regularizer": "+".join(cfg.regularizer.keys()),
        "disentangle": cfg.disentangle.name if uses_tred else None,
        "backbone": cfg.backbone.name,
        "seed": cfg.seed,
        "sample_rate": cfg.dataset.sample_rate,
        "eval_split": "val" if cfg.dataset.validation else "test",
        "sweep": cfg.sweep_name,
        "iters": cfg.trainer.max_iters,
    }


def check_split(resume: dict | None, digest: str, run_dir: Path, dataset: str) -> None:
    """A checkpoint trained on other images (files added, fixed or removed since: the seeded split
    moved) must not be resumed and then scored on a test split that holds its training images."""
    old = (resume or {}).get("info", {}).get("split_digest")
    if old and old != digest:
        raise DataError(f"{run_dir / 'checkpoint.pt'} was trained on another split of {dataset} (split digest "
                        f"{old}, the data now give {digest}: files were added, removed or relabelled); "
                        "refusing to resume: pass resume=never to start this run over")


def setup_context(cfg: DictConfig, model, source, data, device, run_dir, metrics, kernels: dict | None = None
                  ) -> SetupContext:
    """What the regularizers' `setup` (and through it stage 1) gets from this run. A stage cache
    entry is keyed by the kernel settings too: a native entry never serves a portable run."""
    plain = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731
    kernels = kernels or {"mode": cfg.trainer.kernels}
    return SetupContext(model, source, data, device, run_dir, Path(cfg.cache_dir), metrics, seed=cfg.seed,
                        identity={"backbone": plain(cfg.backbone), "dataset": plain(cfg.dataset),
                                  "kernels": kernel_settings({**kernels, "threads": None})},
                        trainer=cfg.trainer, disentangle=cfg.disentangle)


def train_and_evaluate(cfg: DictConfig, run_dir: Path, metrics: MetricsLog, ckpt: Checkpointer,
                       resume: dict | None, stop: StopSignals, kernels: dict) -> dict:
    t = cfg.trainer
    if t.threads:
        torch.set_num_threads(t.threads)
    seed_everything(cfg.seed, t.deterministic)
    device = pick_device(t.device)
    kernels = check_kernels(kernels, str(device))
    for var, old in kernels["overridden"].items():
        log.warning("trainer.kernels=portable: %s=%s from the environment overridden with %s", var, old,
                    kernels["environment"].get(var))
    data = build_data(cfg.dataset, cfg.seed, t.num_workers)  # every image decoded before training
    data.batches_per_epoch(t.batch_size)
    if ckpt.adopted is not None and (resume or {}).get("info", {}).get("train_digest") != data.train_digest:
        log.info("not adopting %s: it trained on other images; training here", ckpt.adopted["trained_in"])
        resume = None
        ckpt.forget_adoption()
    if ckpt.adopted is None:  # an adopted run is scored on another split than its training run was
        check_split(resume, data.split_digest, run_dir, cfg.dataset.name)
    model, source = build_models(cfg.backbone, data.num_classes, cfg.seed)
    regs = build_regularizers(cfg.regularizer)
    for r in regs:  # unknown layer names fail here, before any work
        resolve_layers(model.backbone.body, dict.fromkeys([*r.source_layers, *r.target_layers]))
    model.to(device)
    source.to(device)

    info: dict = {"train_size": data.train_size, "test_size": data.test_size, "num_classes": data.num_classes,
                  "split_digest": data.split_digest, "train_digest": data.train_digest, "device": str(device),
                  "kernels": kernels}
    ctx = setup_context(cfg, model, source, data, device, run_dir, metrics, kernels)
    t0 = time.perf_counter()
    for r in regs:
        info.update(r.setup(ctx))
    info["stage1_time_s"] = time.perf_counter() - t0
    seed_everything(cfg.seed, t.deterministic)  # fine-tuning must not depend on a stage-1 cache hit

    trainer = Finetuner(model, source, regs, data, t, cfg.seed, device, metrics)
    if resume is not None:
        restored = Checkpointer.restore(resume, trainer, metrics)
        if ckpt.adopted is not None:  # its stage-1 diagnostics, but this run's split and process
            restored = {k: v for k, v in restored.items() if k not in info}
            info.update(ckpt.adopted)
        info.update(restored)
    else:
        ckpt.save(trainer, metrics, info)  # end of stage 1
    try:
        stop.deferring = True  # a stop signal now checkpoints at the end of the step
        info.update(trainer.run(on_step=ckpt.on_step(stop, metrics, info)))
        stop.deferring = False
        if ckpt.saved_at != trainer.iteration:
            ckpt.save(trainer, metrics, info)
    finally:
        stop.deferring = False
        trainer.close()
    scores = evaluate(model, data, t.eval_batch_size, device, "test")
    metrics.log({"stage": "eval", "iter": trainer.iteration, **scores})
    info.update(scores)
    info["iters"] = trainer.iteration
    # Results depend on it (float reductions), identity does not (docs/reliability.md): this process's.
    info["threads"] = torch.get_num_threads()
    info["warnings"] = trainer.warnings + health_warnings(metrics.rows, scores["test_acc"], data.num_classes,
                                                          "val" if cfg.dataset.validation else "test")
    for w in info["warnings"]:
        log.warning("%s", w)
    return info


def run(cfg: DictConfig, run_dir: str | os.PathLike, explicit=(), on_start=None, kernels: dict | None = None) -> dict:
    """Train and evaluate one config in `run_dir`; returns the result dict (also in result.json).
    `explicit`: the command-line / sweep overrides (`key=value`), see `validate`.
    `on_start(run_dir)`: called under the lock once the run will really run (not when it is
    skipped or refused), before it writes anything else: scripts/train.py's train.log and .hydra/.
    `kernels`: the record of `tred.kernels.pin(cfg.trainer.kernels)`, made before torch was
    imported (scripts/train.py); None pins here, which works only where nothing has initialized
    torch with other settings (else a `KernelsError`).

    A finished run directory is never written to when the run is skipped (same config) or
    refused (another config): that check reads only, before the lock (whose file records its
    holder). A directory that cannot be written is an `OutputError`, before any work.
    """
    cfg = validate(cfg, explicit)
    if kernels is None:
        kernels = pin(cfg.trainer.kernels)
    run_dir = Path(run_dir)
    if cfg.resume == "auto":
        done = _skip(run_dir, cfg)
        if done is not None:
            return done
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir / LOCK, cfg.lock_wait_s).acquire()  # one process per run directory
    except OSError as exc:
        raise unwritable(run_dir, exc) from None
    try:
        return _run_locked(cfg, run_dir, on_start, kernels)
    finally:
        lock.release()


def _skip(run_dir: Path, cfg: DictConfig) -> dict | None:
    done = completed_result(run_dir, cfg)
    if done is None:
        return None
    log.info("skipping %s: completed with the same config", run_dir)
    return {**done, "skipped": True}


def unwritable(run_dir: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write the run directory {run_dir} ({exc.strerror or exc}: {exc.filename or run_dir}); "
                       "make it writable, or pick another one (hydra.run.dir / hydra.sweep.dir)")


def check_writable(run_dir: Path) -> None:
    """Atomic writes create files in the run directory: try one now, not after an hour of training."""
    try:
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise unwritable(run_dir, exc) from None


def _run_locked(cfg: DictConfig, run_dir: Path, on_start, kernels: dict) -> dict:
    t = cfg.trainer
    ckpt = Checkpointer(run_dir, OmegaConf.to_container(cfg, resolve=True), t.checkpoint_every, t.max_iters)
    resume = None
    if cfg.resume == "auto":
        done = _skip(run_dir, cfg)  # again under the lock: another process may have finished it
        if done is not None:
            return done
    check_writable(run_dir)
    if cfg.resume == "auto":
        resume = ckpt.load()  # refuses a checkpoint of another config, before any work
        if resume is None and cfg.reuse_from:
            resume = ckpt.adopt(cfg.reuse_from)  # a tuning run that trained exactly this: score it here
    else:
        ckpt.clear()
    if on_start is not None:
        try:
            on_start(run_dir)
        except OSError as exc:
            raise unwritable(run_dir, exc) from None
    if cfg.resume == "auto":
        warn_if_failed(run_dir)  # now: on_start may have opened the run's log
    for name in (RESULT, CONFIG, METRICS):
        remove_stray_temps(run_dir / name)  # of a process killed (SIGKILL) while writing it
    (run_dir / RESULT).unlink(missing_ok=True)
    atomic_write(run_dir / CONFIG, lambda fh: OmegaConf.save(cfg, fh, resolve=True))

    result = {**result_stub(cfg), **provenance()}  # the code that runs now (informational, not identity)
    sinks = build_sinks(cfg, run_dir, result)  # never raises: W&B is optional
    metrics = MetricsLog(run_dir / METRICS, sinks)
    try:
        with StopSignals() as stop:
            result.update(train_and_evaluate(cfg, run_dir, metrics, ckpt, resume, stop, kernels))
        result["status"] = "completed"
    except (KeyboardInterrupt, SystemExit):  # signals, submitit requeue: incomplete, resumable, not failed
        raise
    except BaseException as exc:
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.error("run failed: %s", result["error"])  # kept in the run's appended log file
        raise
    finally:
        if "status" in result:  # completed or failed; an interrupted run leaves no result
            # This attempt's time plus the earlier ones' up to the checkpoint it resumed from.
            result["wall_time_s"], result["attempts"] = ckpt.wall_time_s(), ckpt.attempts
            result["finished"] = utc_stamp()  # the table's date: a file's mtime does not survive git
            write_json(run_dir / RESULT, result)  # local files first: a sink failure loses nothing
        for sink in sinks:
            sink.finish(result)
    if not t.keep_checkpoint:
        ckpt.clear()  # the result is final; the checkpoint is only a resume point
    return result
