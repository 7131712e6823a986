"""Speed of the regularizers relative to plain fine-tuning, of DELTA's attention estimator, of the
portable kernel mode relative to native, and of the on-disk image loader.

    python scripts/bench.py [--rounds 15] [--batch-size 32] [--image-size 64] [--threads 1] [--kernels MODE]

In one process, through the real `Finetuner` built from the composed configs: the median step
time of each method in METHODS divided by that of `l2` (same backbone, batch, input size), and
the speed-up of the fast channel-attention estimator over the naive one (same batch and head,
their outputs compared). Measurements are interleaved (round-robin over methods, layer by layer
for the estimators) so that load from other processes hits all of them alike. Writes
outputs/bench/bench.json with keys `step_ratio.<name>` and `delta_attention_speedup`, and
`loader_images_per_s.workers<N>`: the paper-scale pipeline (decode JPEG, resize 256, crop 224,
flip) alone on a generated tree of 500x375 JPEGs (`--skip-loader` to leave it out).

`kernel_step_ratio` (`--skip-kernels` to leave it out): the step time of plain fine-tuning in the
Flowers-102 regime (Lite0, 72 px, batch 32, channels_last, 1 thread) with trainer.kernels=portable
divided by native. The mode is fixed when a process starts, so each measurement is a child process
of its own, alternating portable and native (`--kernel-pairs` of them); the ratio is that of the
medians of their median step times. Everything else runs in this process's mode (`--kernels`,
default portable, as the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tred.kernels import MODES, pin  # noqa: E402 - before torch: a process's kernel mode is fixed at import


def _early_kernels(argv) -> str:
    return argv[argv.index("--kernels") + 1] if "--kernels" in argv[:-1] else "portable"


ENVIRONMENT = dict(os.environ)  # as started: the kernel children start from it, not from this process's pin
KERNELS = pin(_early_kernels(sys.argv))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from tred.config import validate  # noqa: E402
from tred.data import build_data  # noqa: E402
from tred.data.throughput import loader_throughput  # noqa: E402
from tred.engine.loop import Finetuner  # noqa: E402
from tred.engine.metrics import MetricsLog  # noqa: E402
from tred.io import write_json  # noqa: E402
from tred.models import build_models  # noqa: E402
from tred.regularizers import build_regularizers  # noqa: E402
from tred.run import setup_context  # noqa: E402
from tred.schema import register_resolvers  # noqa: E402
from tred.stage1.channel_attention import attention_weights, channel_scores, channel_scores_naive  # noqa: E402

# (name, regularizer overrides). Adding a method to the benchmark = one entry here. The first
# entry is the reference. DELTA's attention is computed from 1 batch: it changes values, not speed.
METHODS = [
    ("l2", ["regularizer=l2"]),
    ("l2sp", ["regularizer=l2sp"]),
    ("bss", ["regularizer=bss"]),
    ("at", ["regularizer=at"]),
    ("delta", ["regularizer=delta", "regularizer.delta.attention_epochs=1",
               "regularizer.delta.attention_batches=1"]),
    # Stage 2 of TRED; a 1-epoch stage 1 only provides the disentangler (its cost is not timed here).
    ("tred", ["regularizer=tred", "disentangle.epochs=1", "disentangle.probe_steps=5",
              "disentangle.diagnostics_max_images=64"]),
]


def compose_cfg(overrides):
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return validate(compose(config_name="train", overrides=list(overrides)))


def build_trainer(name, overrides, common, workdir: Path) -> Finetuner:
    cfg = compose_cfg([*common, *overrides, f"cache_dir={workdir / 'cache'}"])
    data = build_data(cfg.dataset, cfg.seed)
    model, source = build_models(cfg.backbone, data.num_classes, cfg.seed)
    regs = build_regularizers(cfg.regularizer)
    metrics = MetricsLog(workdir / f"{name}.csv")
    ctx = setup_context(cfg, model, source, data, torch.device("cpu"), workdir, metrics)
    for r in regs:
        r.setup(ctx)
    return Finetuner(model, source, regs, data, cfg.trainer, cfg.seed, torch.device("cpu"), metrics)


def step_ratios(trainers: dict, batch, rounds: int, warmup: int = 2) -> dict:
    times = {name: [] for name in trainers}
    for r in range(warmup + rounds):
        for name, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.step(*batch)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ref = next(iter(med.values()))
    for name, m in med.items():
        print(f"step {name:8s} median {1e3 * m:7.1f} ms  ratio {m / ref:.3f}")
    return {f"step_ratio.{name}": m / ref for name, m in med.items()}


def attention_speedup(trainer: Finetuner, batch, layers) -> dict:
    """Fast vs naive channel scores on one batch with one (random, seeded) head.

    The fast estimator runs once for all layers, as in training (its inference copy of the source
    included), before and after the naive one (layer by layer); its time is the mean of the two.
    `plain_network`: the fast method on the unmodified source (suffix-only recomputation and
    stacking alone, without the folded channels_last copy and the outer-product convolutions).
    """
    torch.manual_seed(0)
    source = trainer.source
    head = nn.Linear(source.num_features, trainer.model.head.out_features).eval()

    def timed(fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        return out, time.perf_counter() - t0

    fast, fast_t = timed(channel_scores, source, head, [batch], layers)
    _, plain_t = timed(channel_scores, source, head, [batch], layers, optimized=False)
    naive_t, diff = 0.0, 0.0
    for j in layers:
        naive, t = timed(channel_scores_naive, source, head, [batch], [j])
        naive_t += t
        diff = max(diff, (attention_weights(fast[j], 5.0) - attention_weights(naive[j], 5.0)).abs().max().item())
        print(f"attention naive {j:10s} {t:7.2f}s")
    fast_t = (fast_t + timed(channel_scores, source, head, [batch], layers)[1]) / 2
    plain_t = (plain_t + timed(channel_scores, source, head, [batch], layers, optimized=False)[1]) / 2
    print(f"attention naive {naive_t:.2f}s, fast {fast_t:.2f}s ({naive_t / fast_t:.1f}x), fast method on the "
          f"plain network {plain_t:.2f}s ({naive_t / plain_t:.1f}x); max |W_fast - W_naive| = {diff:.2e}")
    return {"delta_attention_speedup": naive_t / fast_t, "delta_attention_max_abs_diff": diff,
            "delta_attention_speedup_plain_network": naive_t / plain_t}


# The Flowers-102 regime's step (configs/experiment/flowers_base.yaml) on digits resized to 72 px:
# the same network, input size and batch; only the 10-class head is smaller than the 102-class one.
FLOWERS_STEP = ["dataset=digits", "dataset.image_size=72", "trainer.batch_size=32", "trainer.device=cpu",
                "trainer.channels_last=true"]


def kernel_worker(rounds: int, warmup: int = 3) -> None:
    """In a child process started with --kernels MODE: the median fine-tuning step time, as JSON."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer("l2", ["regularizer=l2"], FLOWERS_STEP, Path(tmp))
        batch = trainer.data.train_batch(0, 32, 0)
        times = []
        for r in range(warmup + rounds):
            t0 = time.perf_counter()
            trainer.step(*batch)
            if r >= warmup:
                times.append(time.perf_counter() - t0)
        trainer.close()
    print(json.dumps({"mode": KERNELS["mode"], "capability": torch.backends.cpu.get_cpu_capability(),
                      "median_s": statistics.median(times)}))


def kernel_ratio(pairs: int, rounds: int) -> dict:
    """Portable vs native step time, each measured in its own process, the two alternating."""
    medians = {mode: [] for mode in MODES}
    for _ in range(pairs):
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, "--kernels", mode, "--kernel-worker",
                                  "--rounds", str(rounds)], capture_output=True, text=True, check=True,
                                 env=ENVIRONMENT)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            medians[mode].append(res["median_s"])
            print(f"kernels {mode:8s} ({res['capability']}) median step {1e3 * res['median_s']:7.1f} ms")
    p, n = statistics.median(medians["portable"]), statistics.median(medians["native"])
    print(f"kernels portable / native step time: {p / n:.3f} (Lite0, 72 px, batch 32, 1 thread; "
          f"{pairs} processes each, {rounds} steps per process)")
    return {"kernel_step_ratio": p / n, "kernel_step_ms.portable": 1e3 * p, "kernel_step_ms.native": 1e3 * n}


def loader_speed(tmp: Path, workers=(0, 2), n_images: int = 96, batch_size: int = 32) -> dict:
    """Images/s of the paper-scale training pipeline alone, on a generated image_folder tree."""
    rng = np.random.default_rng(0)
    for i in range(n_images):
        folder = tmp / "images" / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=90)
    out = {}
    for n in workers:
        cfg = compose_cfg(["dataset=image_folder", f"dataset.root={tmp / 'images'}", "dataset.test_fraction=0.25"])
        data = build_data(cfg.dataset, cfg.seed, num_workers=n)
        res = loader_throughput(data, batch_size, n_batches=4)
        out[f"loader_images_per_s.workers{n}"] = res["loader_images_per_s"]
        print(f"loader {n} workers: {res['loader_images_per_s']:.0f} images/s (224 crops of 500x375 JPEGs)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)  # 1: robust on a shared CPU
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--skip-attention", action="store_true")
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--kernels", choices=MODES, default="portable", help="this process's kernel mode")
    ap.add_argument("--skip-kernels", action="store_true", help="leave out portable vs native")
    ap.add_argument("--kernel-pairs", type=int, default=3)
    ap.add_argument("--kernel-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "bench.json"))
    args = ap.parse_args()
    if args.kernel_worker:
        kernel_worker(args.rounds)
        return
    torch.set_num_threads(args.threads)
    common = [f"dataset={args.dataset}", f"dataset.image_size={args.image_size}",
              f"trainer.batch_size={args.batch_size}", "trainer.device=cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: build_trainer(name, ov, common, Path(tmp)) for name, ov in METHODS}
        ref = next(iter(trainers.values()))
        batch = ref.data.train_batch(0, args.batch_size, 0)
        out = {"batch_size": args.batch_size, "image_size": args.image_size, "threads": args.threads,
               "rounds": args.rounds, **step_ratios(trainers, batch, args.rounds)}
        if not args.skip_attention:
            cfg = compose_cfg(common)
            out.update(attention_speedup(ref, batch, list(cfg.backbone.feature_layers)))
        for t in trainers.values():
            t.close()
        if not args.skip_loader:
            out.update(loader_speed(Path(tmp)))
    if not args.skip_kernels:
        out.update(kernel_ratio(args.kernel_pairs, args.rounds))
    out["kernels"] = KERNELS["mode"]
    write_json(Path(args.out), out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
