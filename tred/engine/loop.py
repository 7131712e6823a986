"""The fine-tuning loop: iteration-based SGD with a step schedule, loss = CE + regularizer terms.

The loop knows nothing about any particular regularizer: it asks each one which feature maps
it needs, computes them (one source forward per step, in inference mode, only if needed) and
adds up the terms they return.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from tred.engine.health import DOMINANCE, first_step_problems
from tred.engine.precision import Precision
from tred.errors import NonFiniteLossError, PenaltyScaleError
from tred.models.hooks import FeatureTaps
from tred.regularizers.base import Step

log = logging.getLogger(__name__)


def optimizer_weight_decay(regularizers, override) -> float:
    if override is not None:
        return float(override)
    return max((r.weight_decay for r in regularizers), default=0.0)


def build_optimizer(model, regularizers, tcfg):
    wd = optimizer_weight_decay(regularizers, tcfg.weight_decay)
    groups = [
        {"params": [p for p in model.backbone.parameters() if p.requires_grad], "lr": tcfg.lr},
        {"params": list(model.head.parameters()), "lr": tcfg.lr * tcfg.head_lr_mult},
    ]
    opt = torch.optim.SGD(groups, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=wd)
    milestones = sorted({int(round(m * tcfg.max_iters)) for m in tcfg.lr_milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=tcfg.lr_gamma)
    return opt, sched


class Finetuner:
    """Holds what one fine-tuning run changes: model, optimizer, schedule, iteration."""

    def __init__(self, model, source, regularizers, data, tcfg, seed: int, device, metrics):
        self.model, self.source, self.regs = model, source, regularizers
        self.data, self.tcfg, self.seed, self.device, self.metrics = data, tcfg, seed, device, metrics
        self.optimizer, self.scheduler = build_optimizer(model, regularizers, tcfg)
        self.iteration = 0
        self.finetune_time_s = 0.0  # fine-tuning time so far, earlier attempts' included (run())
        self.warnings: list[str] = []  # the start-of-run scale check's (trainer.penalty_check=warn)
        self._term_owner: dict = {}  # loss term -> the regularizer that returned it
        self.precision = Precision(device, tcfg.amp, tcfg.channels_last)
        self.precision.prepare(model, source)
        src_layers = sorted({n for r in regularizers for n in r.source_layers})
        tgt_layers = sorted({n for r in regularizers for n in r.target_layers})
        self.source_taps = FeatureTaps(source.body, src_layers) if src_layers else None
        self.target_taps = FeatureTaps(model.backbone.body, tgt_layers) if tgt_layers else None

    def close(self) -> None:
        for taps in (self.source_taps, self.target_taps):
            if taps is not None:
                taps.close()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "iteration": self.iteration,
                "regularizers": {r.name: r.state_dict() for r in self.regs},
                "grad_scaler": self.precision.state_dict(), "finetune_time_s": self.finetune_time_s}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = state["iteration"]
        for r in self.regs:
            r.load_state_dict(state["regularizers"].get(r.name, {}))
        self.precision.load_state_dict(state.get("grad_scaler", {}))
        self.finetune_time_s = float(state.get("finetune_time_s", 0.0))  # absent: an older checkpoint

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step; returns the detached loss terms."""
        self.model.train()
        x, amp = self.precision.input(x), self.precision
        with amp.autocast():
            logits, feats = self.model(x)
            target_maps = self.target_taps.pop() if self.target_taps else {}
            source_maps = {}
            if self.source_taps is not None:
                with torch.inference_mode():
                    self.source(x)
                source_maps = self.source_taps.pop()
        # Loss terms in float32 (no-op copies on CPU, where everything already is float32).
        logits, feats = amp.as_float32(logits), amp.as_float32(feats)
        step = Step(self.model, logits, y, feats, amp.as_float32(target_maps), amp.as_float32(source_maps))
        terms = {"ce": F.cross_entropy(logits, y)}
        for r in self.regs:
            own = r.penalty(step)
            if self.iteration == 0:  # for the first step's scale check only
                self._term_owner.update(dict.fromkeys(own, r))
            terms.update(own)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(
                f"non-finite loss at iteration {self.iteration}: term(s) {bad} = "
                f"{[float(terms[k].detach()) for k in bad]}")
        self.optimizer.zero_grad(set_to_none=True)
        amp.backward_step(loss, self.optimizer)
        self.scheduler.step()
        self.iteration += 1
        out = {k: v.detach() for k, v in terms.items()}
        out["loss"] = loss.detach()
        out["correct"] = (logits.detach().argmax(1) == y).sum()
        return out

    def run(self, on_step=None) -> dict:
        """Train until `max_iters`; `on_step(self)` is called after every step (checkpoints ...)."""
        t = self.tcfg
        self.data.batches_per_epoch(t.batch_size)  # fails early on an impossible batch size
        stream = self.data.train_stream(t.batch_size, self.seed, start=self.iteration)
        bar = _progress(t.max_iters, self.iteration)
        window_t, window_n, window_correct = time.perf_counter(), 0, 0
        start_t, before = time.perf_counter(), self.finetune_time_s  # before: earlier attempts'
        for x, y in stream:
            if self.iteration >= t.max_iters:
                break
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            lr = self.optimizer.param_groups[0]["lr"]
            terms = self.step(x, y)
            self.finetune_time_s = before + time.perf_counter() - start_t  # a checkpoint carries it
            if self.iteration == 1:  # the first step of the run (a resumed run has passed it)
                self.check_penalty_scale(terms)
            window_n += len(y)
            window_correct += int(terms.pop("correct"))
            if bar is not None:
                bar.update(1)
            if self.iteration % t.log_every == 0 or self.iteration == t.max_iters:
                now = time.perf_counter()
                # train_acc: accuracy on the augmented training batches since the last row
                row = {"stage": "finetune", "iter": self.iteration, "lr": lr,
                       **{k: float(v) for k, v in terms.items()},
                       "train_acc": 100.0 * window_correct / window_n,
                       "imgs_per_s": window_n / max(now - window_t, 1e-9)}
                self.metrics.log(row)
                window_t, window_n, window_correct = now, 0, 0
                if bar is None:
                    log.info("iter %d/%d loss %.4f lr %.2e", self.iteration, t.max_iters, row["loss"], lr)
                else:
                    bar.set_postfix(loss=f"{row['loss']:.3f}")
            if on_step is not None:
                on_step(self)
        if bar is not None:
            bar.close()
        self.finetune_time_s = before + time.perf_counter() - start_t
        return {"finetune_time_s": self.finetune_time_s}


    def check_penalty_scale(self, terms: dict) -> None:
        """trainer.penalty_check: when a regularizer term is >= DOMINANCE x the cross-entropy at the
        first step (tred.engine.health), `warn` logs it at once and keeps it for result.json,
        `error` stops the run, `off` skips the check."""
        mode = self.tcfg.penalty_check
        problems = first_step_problems({k: float(v) for k, v in terms.items() if k not in ("loss", "correct")},
                                       self.data.num_classes) if mode != "off" else []
        for term, value, ce in problems:
            r = self._term_owner.get(term)
            key = getattr(r, "weight_key", None)
            where = ""
            if key is not None and key in r.cfg:
                weight = float(r.cfg[key])
                where = (f"; regularizer.{r.name}.{key}={weight:g} is too large for this backbone and image "
                         f"size: ~{weight * ce / value:.1g} would make it about the cross-entropy (choose it on "
                         "held-out data: a tuning sweep, docs/results.md)")
            k = self.data.num_classes
            msg = (f"at the first step the loss term `{term}` is {value:.3g}, >= {DOMINANCE:g}x the cross-entropy "
                   f"({ce:.3g}; taken as at least ln({k}) = {math.log(k):.3g}): the penalty, not the task, would "
                   f"drive training{where}")
            if mode == "error":
                raise PenaltyScaleError(msg)
            log.warning("%s", msg)
            self.warnings.append(msg)


def _progress(total: int, initial: int):
    if not sys.stderr.isatty():
        return None
    return tqdm(total=total, initial=initial, desc="fine-tune", dynamic_ncols=True)

