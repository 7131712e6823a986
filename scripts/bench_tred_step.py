"""Time a stage-2 TRED step against a plain fine-tuning (l2) step with the real `Finetuner`.

Interleaved rounds (the CPU is shared): each round times `--steps` plain steps, then `--steps` TRED
steps, on the same batches; the report is the median over rounds of the per-round ratio. Also
times one stage-1 step (disentangler + CLUB, cached maps) for the stage-1 budget.

    PYTHONPATH=$PWD python scripts/bench_tred_step.py [--rounds 5 --steps 5 --batch 32 --size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from tred.config import register_resolvers, validate
from tred.data import build_data
from tred.disentangle.model import Disentangler
from tred.disentangle.train import Stage1
from tred.engine.loop import Finetuner
from tred.engine.metrics import MetricsLog
from tred.models import build_models
from tred.regularizers import build_regularizers

ROOT = Path(__file__).resolve().parents[1]


def config(reg: str, size: int, batch: int):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", [f"regularizer={reg}", "dataset=elpv", f"dataset.image_size={size}",
                                f"trainer.batch_size={batch}", "trainer.max_iters=100000"])
    return validate(cfg)


def finetuner(cfg, data, tmp: Path, disentangler=None):
    model, source = build_models(cfg.backbone, data.num_classes, cfg.seed)
    regs = build_regularizers(cfg.regularizer, cfg.backbone)
    for r in regs:
        if disentangler is not None:
            r.disentangler = disentangler  # stage-1 weights do not change the cost of a step
    return Finetuner(model, source, regs, data, cfg.trainer, cfg.seed, torch.device("cpu"),
                     MetricsLog(tmp / f"{regs[0].name}.csv"))


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", default="/tmp/bench_tred_step")
    a = ap.parse_args()
    register_resolvers()
    tmp = Path(a.out)
    tmp.mkdir(parents=True, exist_ok=True)
    plain_cfg, tred_cfg = config("l2", a.size, a.batch), config("tred", a.size, a.batch)
    data = build_data(plain_cfg.dataset, 0)
    layer = tred_cfg.regularizer.tred.layers[0]
    plain = finetuner(plain_cfg, data, tmp)
    channels = {layer: plain.model.backbone.num_features}
    dis = Disentangler(channels, data.num_classes).eval().requires_grad_(False)
    tred = finetuner(tred_cfg, data, tmp, dis)
    stage = Stage1(tred_cfg.disentangle, channels, data.num_classes, 0, torch.device("cpu"))
    x, y = next(data.train_stream(a.batch, 0))
    with torch.no_grad():
        h = a.size // 32
        maps = {layer: torch.rand(a.batch, channels[layer], max(h, 1), max(h, 1)) * 6}
    for t in (plain, tred):
        t.step(x, y)  # warm-up
    ratios, p_times, t_times, s_times = [], [], [], []
    for _ in range(a.rounds):
        p = timed(lambda: plain.step(x, y), a.steps)
        q = timed(lambda: tred.step(x, y), a.steps)
        s = timed(lambda: stage.step(maps, y), a.steps)
        ratios.append(q / p)
        p_times.append(p), t_times.append(q), s_times.append(s)
    print(f"plain step {statistics.median(p_times) * 1e3:.0f} ms, tred step {statistics.median(t_times) * 1e3:.0f} ms, "
          f"stage-1 step {statistics.median(s_times) * 1e3:.0f} ms; tred/plain per round "
          f"{[round(r, 2) for r in ratios]}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
