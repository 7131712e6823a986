"""A run's own health check: a completed run whose numbers mean nothing says so.

A finite loss can still be absurd (CE 3.6e12 at `trainer.lr=1e6`): such a run completes, and
its `result.json` lists what is wrong in `warnings` (each also a log warning). It stays
`completed`; what to do with a flagged cell is the reader's call (the tables mark them).

- chance level: the evaluated accuracy, or the training accuracy of the last logged window
  (metrics.csv `train_acc` of the last finetune row), is at most CHANCE_FACTOR x 100 / classes;
- a regularizer term stays >= DOMINANCE x the cross-entropy in each of the last LAST_ROWS
  logged finetune rows. The CE is taken as at least ln(classes), the CE of a uniform guess: a
  model that fits its training batches drives the CE to ~0.01, and a penalty 100x that is normal.

At the start of a run (`first_step_problems`, trainer.penalty_check): a term >= DOMINANCE x the
cross-entropy (again at least ln(classes)) at the first step means the weight is orders of
magnitude off for this backbone and image size (a published weight set for ResNet-101 at 224 px
on Lite0 at 72 px: TRED at 1e-3 collapsed Flowers-102 to chance); the run says so at once
(trainer.penalty_check=warn, the default) or stops there (error), instead of reporting it only
after the whole budget is spent.
"""

from __future__ import annotations

import math

CHANCE_FACTOR = 1.5
DOMINANCE = 100.0
LAST_ROWS = 3
NOT_TERMS = ("stage", "iter", "lr", "ce", "loss", "train_acc", "imgs_per_s")


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def health_warnings(rows, accuracy, num_classes: int, split: str = "test") -> list[str]:
    """Warnings for a finished run from its metrics rows (dicts, as in metrics.csv), its
    evaluated accuracy (%) on `split` and its number of classes; [] when nothing looks wrong."""
    out = []
    chance = CHANCE_FACTOR * 100.0 / num_classes
    note = f"<= {chance:.1f}% ({CHANCE_FACTOR:g} x chance for {num_classes} classes)"
    acc = _number(accuracy)
    if acc is not None and acc <= chance:
        out.append(f"chance-level {split} accuracy: {acc:.1f}% {note}")
    finetune = [r for r in rows if r.get("stage") == "finetune"]
    train_acc = _number(finetune[-1].get("train_acc")) if finetune else None
    if train_acc is not None and train_acc <= chance:
        out.append(f"chance-level training accuracy: {train_acc:.1f}% in the last logged window "
                   f"(iteration {finetune[-1].get('iter')}) {note}")
    last = finetune[-LAST_ROWS:]
    floor = math.log(num_classes)
    terms = dict.fromkeys(k for r in last for k in r if k not in NOT_TERMS)
    for term in terms:
        pairs = [(_number(r.get(term)), _number(r.get("ce"))) for r in last]
        if last and all(t is not None and ce is not None and t >= DOMINANCE * max(ce, floor) for t, ce in pairs):
            rows_note = f"each of the last {len(last)} logged rows" if len(last) > 1 else "the last logged row"
            t, ce = pairs[-1]
            out.append(f"regularizer term `{term}` stays >= {DOMINANCE:g}x the cross-entropy (taken as at "
                       f"least ln({num_classes}) = {floor:.2g}, the CE of a uniform guess) in {rows_note} "
                       f"(last: {t:.3g} vs {ce:.3g}): the penalty, not the task, drives training")
    return out


def first_step_problems(terms: dict, num_classes: int) -> list[tuple[str, float, float]]:
    """(term, value, CE floor) of every regularizer term >= DOMINANCE x max(CE, ln classes) in the
    loss terms of the first step (`terms`: name -> float, with "ce")."""
    ce = max(float(terms["ce"]), math.log(num_classes))
    return [(k, float(v), ce) for k, v in terms.items()
            if k != "ce" and _number(v) is not None and float(v) >= DOMINANCE * ce]
