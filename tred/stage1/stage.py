"""TRED's stage 1 as a run sees it: cached per everything that determines it, logged, saved in the run dir.

`run_stage1` takes what it needs explicitly: its settings (the `disentangle` group), the frozen
source, the data, and `identity` (the run's backbone and dataset settings), which with the
settings, the seed and the layers keys the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from tred.cache import cached, keep_entry
from tred.stage1.disentangle import evaluate_stage1, train_disentangler
from tred.stage1.disentangler import Disentangler

log = logging.getLogger(__name__)
CACHE_KIND = "disentangler"
CACHE_VERSION = 3  # bump when the stage-1 code changes what it computes (2: reference_gap, 3: irrelevant probe)
# A reference gap above this is reported as degenerate (E_r(z) further from z than zero is).
GAP_WARNING = 1.0
SAVED = "disentangler.pt"
FINAL_KEYS = ("ce", "acc", "rec", "mmd2", "mi")


def cache_parts(settings, identity: dict, seed: int, layers, eval_batch_size: int) -> dict:
    """Everything that determines the trained disentangler (the cache key)."""
    return {"version": CACHE_VERSION, "backbone": identity["backbone"], "dataset": identity["dataset"],
            "kernels": identity.get("kernels"), "seed": seed,
            "disentangle": OmegaConf.to_container(settings, resolve=True), "layers": list(layers),
            "eval_batch_size": eval_batch_size}


def compute(settings, source, data, layers, seed: int, device, eval_batch_size: int) -> dict:
    n_cls = data.num_classes

    def on_epoch(row):
        log.info("disentangle epoch %d/%d: ce %.3f acc %.1f rec %.4f mmd2 %.4f mi %.3f", row["epoch"],
                 settings.epochs, row["ce"], row["acc"], row["rec"], row["mmd2"], row["mi"])

    t0 = time.perf_counter()
    model, history, train = train_disentangler(settings, source, layers, data, n_cls, seed, device,
                                               eval_batch_size, on_epoch)
    train_time = time.perf_counter() - t0
    scores, n_eval = evaluate_stage1(settings, model, source, layers, data, train, n_cls, seed, device,
                                     eval_batch_size)
    return {"disentangler": model.export(), "history": history, "scores": scores, "diagnostics_images": n_eval,
            "train_time_s": train_time, "eval_time_s": time.perf_counter() - t0 - train_time}


def summary(entry: dict, layers, split: str) -> dict:
    """Flat result.json diagnostics: the last epoch's terms and the accuracies, averaged over layers."""
    last = entry["history"][-1] if entry["history"] else {}
    out = {f"disentangle_{k}": last.get(k) for k in FINAL_KEYS}
    mean = lambda key: sum(entry["scores"][n][key] for n in layers) / len(layers)  # noqa: E731
    out.update({
        "disentangle_diagnostics_split": split,
        "disentangle_diagnostics_images": entry["diagnostics_images"],
        f"disentangle_relevant_{split}_acc": mean("relevant_acc"),
        f"source_probe_{split}_acc": mean("probe_acc"),
        f"disentangle_irrelevant_probe_{split}_acc": mean("irrelevant_probe_acc"),
        "disentangle_reference_gap": mean("reference_gap"),
        "disentangle_train_time_s": entry["train_time_s"],
        "disentangle_eval_time_s": entry["eval_time_s"],
    })
    if len(layers) > 1:
        out["disentangle_layers"] = entry["scores"]
    return out


def run_stage1(settings, source, data, layers, *, identity: dict, seed: int, device, eval_batch_size: int,
               cache_dir, run_dir=None, on_row: Callable[[dict], None] | None = None) -> tuple[Disentangler, dict]:
    """The trained (frozen, eval-mode) disentangler on `device` and its diagnostics.

    `on_row` receives each epoch's row of the stage-1 history (the run's metrics log);
    with `run_dir`, the cache entry is also kept there as disentangler.pt.
    """
    layers = list(layers)
    parts = cache_parts(settings, identity, seed, layers, eval_batch_size)
    entry, hit = cached(cache_dir, CACHE_KIND, parts,
                        lambda: compute(settings, source, data, layers, seed, device, eval_batch_size))
    for row in entry["history"]:
        if on_row is not None:
            on_row({"stage": "disentangle", **row})
    if run_dir is not None:
        keep_entry(cache_dir, CACHE_KIND, parts, entry, Path(run_dir) / SAVED)
    model = Disentangler.from_export(entry["disentangler"]).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    info = summary(entry, layers, settings.diagnostics_split)
    info["disentangle_cache_hit"] = hit
    if info["disentangle_reference_gap"] > GAP_WARNING:
        log.warning("stage 1 looks degenerate: the TRED reference E_r(z) is %.3g x as far from the source "
                    "map z as zero is (mean (E_r(z) - z)^2 / mean z^2); see docs/tred.md, 'Diagnostics'",
                    info["disentangle_reference_gap"])
    return model, info
