"""DELTA's channel attention (Li et al., ICLR 2019, Sec. 3.3 and the original code).

1. Train only a new linear head on the frozen source backbone (eval mode) for `epochs`.
2. For each channel c of layer j, score_c = mean over `batches` training batches of
   CE(channel c of FM_j set to zero) - CE(unchanged).
3. z-score the scores within the layer; W_j = softmax(z / temperature) (sums to 1).

Fast: the source forward runs once per batch (all layers' maps and the base loss at once);
for each layer only the network after it is recomputed (`tred.models.suffix`), on many
zeroed channels stacked along the batch axis (eval-mode BN makes stacking exact).
`channel_scores_naive` (one full forward per channel) is the reference the tests compare to.
Departure, for speed: the head is trained on the pooled source features of the un-augmented
training images, computed once, instead of re-running the backbone on augmented batches.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from tred.cache import cached
from tred.models.hooks import FeatureTaps, resolve_layers
from tred.models.suffix import network_suffix

log = logging.getLogger(__name__)
# Elements of stacked zeroed maps per suffix forward: bounds memory; 2^18 was fastest on CPU (1 thread).
CHUNK_ELEMS = 1 << 18


@torch.no_grad()
def pooled_features(source: nn.Module, batches, device) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for x, y in batches:
        feats.append(source(x.to(device)))
        labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)


def train_head(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int,
               batch_size: int, lr: float, momentum: float, seed: int) -> nn.Linear:
    """A new linear head trained by SGD on fixed features; seeded, global RNG untouched."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(feats.shape[1], num_classes).to(feats.device)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum)
    n = len(labels)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(feats.device)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(head(feats[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval().requires_grad_(False)


def _zeroed_loss(suffix, head, fm: torch.Tensor, y: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Mean CE of the batch for each channel in `channels` zeroed (one stacked forward)."""
    g, b = len(channels), len(y)
    z = fm.unsqueeze(0).repeat(g, 1, 1, 1, 1)  # G x B x C x H x W
    z[torch.arange(g, device=fm.device), :, channels] = 0
    logits = head(suffix(z.flatten(0, 1)))
    return F.cross_entropy(logits, y.repeat(g), reduction="none").view(g, b).mean(1)


@torch.no_grad()
def channel_scores(source: nn.Module, head: nn.Module, batches, layers) -> dict[str, torch.Tensor]:
    """Mean increase of CE when each channel is zeroed, per layer (fast estimator)."""
    source.eval()
    suffixes = {j: network_suffix(source.body, j) for j in layers}
    taps = FeatureTaps(source.body, layers)
    totals: dict[str, torch.Tensor] = {}
    try:
        n = 0
        for x, y in batches:
            base = F.cross_entropy(head(source(x)), y)
            maps = taps.pop()
            for j in layers:
                fm = maps[j]
                per = max(1, CHUNK_ELEMS // fm.numel())
                chans = torch.arange(fm.shape[1], device=fm.device)
                inc = torch.cat([_zeroed_loss(suffixes[j], head, fm, y, c) for c in chans.split(per)]) - base
                totals[j] = totals.get(j, 0) + inc
            n += 1
    finally:
        taps.close()
    return {j: t / n for j, t in totals.items()}


@torch.no_grad()
def channel_scores_naive(source: nn.Module, head: nn.Module, batches, layers) -> dict[str, torch.Tensor]:
    """Reference estimator: one full forward per (batch, layer, channel), zeroing by a hook.

    `batches` is a list of (x, y) on the source's device.
    """
    source.eval()
    modules = resolve_layers(source.body, layers)
    taps = FeatureTaps(source.body, layers)
    try:
        source(batches[0][0])
        channels = {j: fm.shape[1] for j, fm in taps.pop().items()}
    finally:
        taps.close()
    totals: dict[str, torch.Tensor] = {}
    n = 0
    for x, y in batches:
        base = F.cross_entropy(head(source(x)), y)
        for j, module in modules.items():
            inc = torch.empty(channels[j], device=x.device)
            for c in range(channels[j]):
                def zero(_m, _i, out, c=c):
                    out = out.clone()
                    out[:, c] = 0
                    return out
                handle = module.register_forward_hook(zero)
                try:
                    inc[c] = F.cross_entropy(head(source(x)), y) - base
                finally:
                    handle.remove()
            totals[j] = totals.get(j, 0) + inc
        n += 1
    return {j: t / n for j, t in totals.items()}


def attention_weights(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z-score(scores) / temperature); uniform when all scores are equal."""
    std = scores.std()
    z = (scores - scores.mean()) / std if std > 0 else torch.zeros_like(scores)
    return torch.softmax(z / temperature, dim=0)


def score_batches(data, batch_size: int, seed: int, count: int, device):
    """The first `count` batches of the seeded training stream, on `device`."""
    stream = data.train_stream(batch_size, seed)
    return [(x.to(device), y.to(device)) for (x, y), _ in zip(stream, range(count))]


def channel_attention(ctx, layers, epochs, batches, temperature=5.0) -> dict[str, torch.Tensor]:
    """DELTA channel weights W_j (length C_j, sum 1) for each layer, cached on disk (CPU tensors)."""
    cfg, layers = ctx.cfg, list(layers)
    t = cfg.trainer
    parts = {
        "version": 1,
        "backbone": OmegaConf.to_container(cfg.backbone, resolve=True),
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "seed": cfg.seed,
        "head": {"epochs": epochs, "batch_size": t.batch_size, "lr": t.lr * t.head_lr_mult,
                 "momentum": t.momentum},
        "batches": batches, "temperature": temperature, "layers": layers,
    }

    def compute():
        t0 = time.perf_counter()
        data, source, device = ctx.data, ctx.source, ctx.device
        source.eval()
        feats, labels = pooled_features(source, data.eval_batches("train", t.eval_batch_size), device)
        head = train_head(feats, labels, data.num_classes, epochs, t.batch_size, t.lr * t.head_lr_mult,
                          t.momentum, cfg.seed)
        scores = channel_scores(source, head, score_batches(data, t.batch_size, cfg.seed, batches, device), layers)
        log.info("channel attention for %s computed in %.1fs", layers, time.perf_counter() - t0)
        return {j: attention_weights(s, temperature).cpu() for j, s in scores.items()}

    value, hit = cached(ctx.cache_dir, "channel_attention", parts, compute)
    if hit:
        log.info("channel attention for %s read from the cache", layers)
    return value
