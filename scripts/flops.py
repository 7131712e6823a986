"""FLOPs per image of the paper-scale backbones, and the GPU-time estimate that follows from them.

    python scripts/flops.py [--size 224] [--tflops 60] [--runs 192]

Counts with `torch.utils.flop_counter.FlopCounterMode` (FLOPs = 2 x multiply-adds) one forward
and one forward + backward of a randomly initialized timm ResNet-50 / ResNet-101 on one image
(architecture only: the count does not depend on the weights). The estimate assumes a
sustained training throughput of `--tflops` (nothing here measures a GPU): one paper run is
9000 iterations x 48 images, plus one source forward per image for the feature-map regularizers.
"""

from __future__ import annotations

import argparse

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

IMAGES_PER_RUN = 9000 * 48


def gflops(model: torch.nn.Module, size: int, backward: bool) -> float:
    x = torch.randn(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops() / 1e9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--tflops", type=float, default=60.0, help="assumed sustained training TFLOP/s")
    ap.add_argument("--runs", type=int, default=192, help="runs in the table (8 datasets x 8 methods x 3 seeds)")
    args = ap.parse_args(argv)
    print("| backbone | forward GFLOP/img | forward+backward GFLOP/img "
          f"| GPU-hours per run at {args.tflops:g} TFLOP/s |")
    print("|---|---|---|---|")
    hours = {}
    for arch in ("resnet50", "resnet101"):
        model = timm.create_model(arch, pretrained=False)
        fwd, both = gflops(model.eval(), args.size, False), gflops(model.train(), args.size, True)
        per_run = (both + fwd) * 1e9 * IMAGES_PER_RUN  # training step + one source forward
        hours[arch] = per_run / (args.tflops * 1e12) / 3600
        print(f"| {arch} | {fwd:.2f} | {both:.1f} | {hours[arch]:.3f} |")
    lo, hi = min(hours.values()), max(hours.values())
    print(f"\ntraining alone: {args.runs} runs x {lo:.3f}-{hi:.3f} h = {args.runs * lo:.0f}-{args.runs * hi:.0f} "
          "GPU-hours, before evaluation and stage 1 (an estimate: the throughput is assumed)")


if __name__ == "__main__":
    main()
