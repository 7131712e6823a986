"""DELTA's channel attention (Li et al., ICLR 2019, Sec. 3.3 and the original code).

1. Train only a new linear head on the frozen source backbone (eval mode) for `epochs`.
2. For each channel c of layer j, score_c = mean over `batches` training batches of
   CE(channel c of FM_j set to zero) - CE(unchanged).
3. z-score the scores within the layer; W_j = softmax(z / temperature) (sums to 1).

Fast (`channel_scores`): the source forward runs once per batch (all layers' maps at once);
for each layer only the network after it is recomputed (`tred.models.suffix`), on many
zeroed channels stacked along the batch axis (eval-mode BN makes stacking exact). The
recomputation runs on `tred.models.inference.inference_copy` of the source (BatchNorm folded
into the convolutions, channels_last), and a 1x1 convolution that reads the layer's map directly
is replaced by one outer product per zeroed channel (linearity: `_ZeroedInputConv`). Every step
is exact in real arithmetic; in float32 the scores differ from the reference by rounding.
`channel_scores_naive` (one full forward per channel on the unmodified source) is the reference
the tests compare to. A network without a known suffix (any but timm's EfficientNet and ResNet:
torchvision's, your own) is scored by whole forwards of the batch stacked once per zeroed
channel (`_ForwardScorer`), exact too, slower.
Departure, for speed: the head is trained on the pooled source features of the un-augmented
training images, computed once, instead of re-running the backbone on augmented batches.

`fit_channel_attention` is the whole procedure on plain (images, labels) batches: the pipeline
(`channel_attention`, cached) and `tred.library` (`DELTA.fit_attention`) both call it.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from itertools import islice
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tred.cache import cached
from tred.models.hooks import FeatureTaps, resolve_layers
from tred.models.inference import FoldMismatch, inference_copy
from tred.models.suffix import has_suffix, network_suffix

log = logging.getLogger(__name__)
# Elements of stacked zeroed maps per suffix forward: bounds memory; 2^19 was fastest for Lite0 at
# 64 px on one CPU thread (2^17 to 2^20 are within 15% of it).
CHUNK_ELEMS = 1 << 19


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


class _ZeroedInputConv(nn.Module):
    """Stands in for a 1x1 convolution (groups 1, no padding) that reads the hooked layer's map.

    Its input is `fm` with channel c_g zeroed in stacked copy g, and by linearity
    conv(fm with c zeroed) = conv(fm) - W[:, c] (outer) fm[:, c]: the convolution runs once per
    batch and each copy costs one outer product instead of a C_in-deep matrix product.
    """

    def __init__(self, conv: nn.Conv2d, fm: torch.Tensor):
        super().__init__()
        sh, sw = conv.stride
        self.base = conv(fm).permute(0, 2, 3, 1)  # B x H' x W' x O
        self.cols = fm[:, :, ::sh, ::sw].transpose(0, 1)  # C x B x H' x W'
        self.weight = conv.weight.flatten(1).t()  # C x O
        self.channels: torch.Tensor | None = None

    @staticmethod
    def applies_to(m: nn.Module) -> bool:
        return (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
                and m.padding in ((0, 0), "valid"))

    def forward(self, _z: torch.Tensor) -> torch.Tensor:
        c = self.channels
        g = len(c)
        out = torch.addcmul(self.base, self.cols[c].unsqueeze(-1), self.weight[c].view(g, 1, 1, 1, -1), value=-1)
        return out.flatten(0, 1).permute(0, 3, 1, 2)  # (G B) x O x H' x W', channels_last strides


class _LayerScorer:
    """CE increase when each channel of one layer is zeroed, from that layer's map (see module doc).

    `optimized`: run the suffix of `body` as given (False: the reference network, the pure
    suffix-only method) or of its `inference_copy` (True), where the 1x1 convolutions that read
    the map directly are replaced by `_ZeroedInputConv` and inputs are channels_last.
    """

    def __init__(self, body: nn.Module, layer: str, optimized: bool):
        self.body, self.layer = body, layer
        self.suffix = network_suffix(body, layer)
        self.format = torch.channels_last if optimized else torch.contiguous_format
        self.readers: list[str] | None = None if optimized else []

    def _base_loss(self, head: nn.Module, fm: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """CE of the unchanged map; the first call also finds the eligible convolutions that
        take `fm` itself as input (`self.readers`)."""
        found, handles = [], []
        if self.readers is None:
            for name, m in self.body.named_modules():
                if _ZeroedInputConv.applies_to(m):
                    handles.append(m.register_forward_pre_hook(
                        lambda _m, inp, name=name: found.append(name) if inp[0] is fm else None))
        try:
            loss = F.cross_entropy(head(self.suffix(fm)), y)
        finally:
            for h in handles:
                h.remove()
        if self.readers is None:
            self.readers = found
        return loss

    @contextmanager
    def _stand_ins(self, fm: torch.Tensor):
        """The suffix with each reader replaced by a `_ZeroedInputConv` (restored on exit)."""
        places = [(self.body.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]) for n in self.readers]
        originals = [getattr(parent, attr) for parent, attr in places]
        stand_ins = [_ZeroedInputConv(conv, fm) for conv in originals]
        try:
            for (parent, attr), s in zip(places, stand_ins):
                setattr(parent, attr, s)
            yield network_suffix(self.body, self.layer), stand_ins
        finally:
            for (parent, attr), conv in zip(places, originals):
                setattr(parent, attr, conv)

    def __call__(self, head: nn.Module, fm: torch.Tensor, y: torch.Tensor,
                 x: torch.Tensor | None = None) -> torch.Tensor:
        fm = fm.contiguous(memory_format=self.format)  # (x, the images: read by `_ForwardScorer` only)
        base = self._base_loss(head, fm, y)
        per = max(1, CHUNK_ELEMS // fm.numel())
        chans = torch.arange(fm.shape[1], device=fm.device)
        with self._stand_ins(fm) as (suffix, stand_ins):
            losses = [self._zeroed_loss(suffix, head, fm, y, c, stand_ins) for c in chans.split(per)]
        return torch.cat(losses) - base

    def _zeroed_loss(self, suffix, head, fm, y, channels, stand_ins) -> torch.Tensor:
        """Mean CE of the batch for each channel in `channels` zeroed (one stacked forward)."""
        g, b = len(channels), len(y)
        for s in stand_ins:
            s.channels = channels
        z = torch.empty((g * b, *fm.shape[1:]), device=fm.device, dtype=fm.dtype, memory_format=self.format)
        zv = z.view(g, *fm.shape)
        zv.copy_(fm.expand(g, *fm.shape))
        zv[torch.arange(g, device=fm.device), :, channels] = 0
        logits = head(suffix(z))
        return F.cross_entropy(logits, y.repeat(g), reduction="none").view(g, b).mean(1)


class _ForwardScorer:
    """The same CE increases for any network: the whole source runs on the batch stacked once per
    zeroed channel, a forward hook zeroing channel c_g of the layer's output in copy g. Exact (eval
    mode does not mix samples); slower than `_LayerScorer` by the part of the network before the
    layer, recomputed for every channel.
    """

    def __init__(self, source: nn.Module, layer: str):
        self.source, self.module = source, resolve_layers(source.body, [layer])[layer]

    def __call__(self, head: nn.Module, fm: torch.Tensor, y: torch.Tensor,
                 x: torch.Tensor | None = None) -> torch.Tensor:
        base = F.cross_entropy(head(self.source(x)), y)
        per = max(1, CHUNK_ELEMS // x.numel())  # the stacked input bounds the whole forward's memory
        chans = torch.arange(fm.shape[1], device=fm.device)
        return torch.cat([self._zeroed_loss(head, x, y, c) for c in chans.split(per)]) - base

    def _zeroed_loss(self, head, x, y, channels) -> torch.Tensor:
        """Mean CE of the batch for each channel in `channels` zeroed (one stacked forward)."""
        g, b = len(channels), len(y)

        def zero(_m, _inp, out):
            out = out.clone()
            out.unflatten(0, (g, b))[torch.arange(g, device=out.device), :, channels] = 0
            return out

        handle = self.module.register_forward_hook(zero)
        try:
            logits = head(self.source(x.repeat(g, *[1] * (x.dim() - 1))))  # copy-major: g x b
        finally:
            handle.remove()
        return F.cross_entropy(logits, y.repeat(g), reduction="none").view(g, b).mean(1)


def _scorers(source: nn.Module, x: torch.Tensor, layers, optimized: bool) -> dict:
    """A `_LayerScorer` for each layer with a known suffix (on the folded copy when `optimized`),
    a `_ForwardScorer` for the others."""
    fast = [j for j in layers if has_suffix(source.body, j)]
    body = source.body
    if fast and optimized:
        try:
            body = inference_copy(source, x[:4]).body
        except FoldMismatch as e:  # exact either way: only slower
            log.warning("channel attention on the unmodified source: %s", e)
            optimized = False
    return {j: _LayerScorer(body, j, optimized) if j in fast else _ForwardScorer(source, j) for j in layers}


@torch.no_grad()
def channel_scores(source: nn.Module, head: nn.Module, batches, layers,
                   optimized: bool = True) -> dict[str, torch.Tensor]:
    """Mean increase of CE when each channel is zeroed, per layer (fast estimator).

    `source`: `.body` holds the layers, `source(x)` is the pooled feature `head` reads. The
    source runs once per batch for all layers' maps; with `optimized`, the suffixes run on a
    BatchNorm-folded channels_last `inference_copy` of the source made from the first batch.
    """
    source.eval()
    taps = FeatureTaps(source.body, layers)
    scorers: dict = {}
    totals: dict[str, torch.Tensor] = {}
    try:
        n = 0
        for x, y in batches:
            source(x)
            maps = taps.pop()
            if not scorers:
                scorers = _scorers(source, x, layers, optimized)
            for j in layers:
                totals[j] = totals.get(j, 0) + scorers[j](head, maps[j], y, x)
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


def fit_channel_attention(source: nn.Module, train_batches, score_batches, layers, num_classes: int, *,
                          epochs: int, batch_size: int, lr: float, momentum: float, temperature: float,
                          seed: int, device) -> dict[str, torch.Tensor]:
    """DELTA channel weights W_j (length C_j, sum 1) of each layer, on `device`, from plain batches.

    `source`: the frozen network, `.body` holding the layers and `source(x)` returning the pooled
    feature (tred.models.backbones.Backbone; tred.library wraps any model so). A new linear head
    (`num_classes` outputs) trains `epochs` epochs of SGD (`batch_size`, `lr`, `momentum`, seeded
    by `seed`) on the pooled source features of `train_batches`, (images, labels) batches, computed
    once; the scores average the (images, labels) batches of `score_batches`;
    W_j = softmax(z-score(scores_j) / temperature).
    """
    source.eval()
    feats, labels = pooled_features(source, train_batches, device)
    head = train_head(feats, labels, num_classes, epochs, batch_size, lr, momentum, seed)
    scored = [(x.to(device), y.to(device)) for x, y in score_batches]  # (the pipeline's errors come first)
    if len(labels) < batch_size:  # train_head took no step: a random head, random weights
        raise ValueError(f"channel attention: {len(labels)} training images, fewer than one head batch ({batch_size})")
    scores = channel_scores(source, head, scored, layers)
    return {j: attention_weights(s, temperature) for j, s in scores.items()}


class Attention(NamedTuple):
    """DELTA's channel weights per layer, what computing them cost (`time_s`, also when the
    cache served them: the cost of a run that finds no cache) and whether the cache did."""
    weights: dict[str, torch.Tensor]
    time_s: float
    cache_hit: bool


def channel_attention(source: nn.Module, data, layers, *, epochs: int, batches: int, temperature: float,
                      batch_size: int, lr: float, momentum: float, eval_batch_size: int, seed: int, device,
                      cache_dir, identity: dict) -> Attention:
    """DELTA channel weights W_j (length C_j, sum 1) for each layer, cached on disk (CPU tensors):
    `fit_channel_attention` on `data`'s batches.

    The head trains `epochs` epochs of SGD (`batch_size`, `lr`, `momentum`) on the pooled source
    features of `data`'s training split (computed `eval_batch_size` images at a time); the scores
    average the first `batches` batches of the seeded training stream. `identity` says which source
    network and which data these are (the run's backbone and dataset settings): with the settings
    above it keys the cache.
    """
    layers = list(layers)
    parts = {
        "version": 2,  # 2: the entry keeps its compute time
        "backbone": identity["backbone"],
        "dataset": identity["dataset"],
        "kernels": identity.get("kernels"),  # the CPU code paths that computed it (tred/kernels.py)
        "seed": seed,
        "head": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum},
        "batches": batches, "temperature": temperature, "layers": layers,
    }

    def compute():
        t0 = time.perf_counter()
        weights = fit_channel_attention(
            source, data.eval_batches("train", eval_batch_size), islice(data.train_stream(batch_size, seed), batches),
            layers, data.num_classes, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
            temperature=temperature, seed=seed, device=device)
        weights = {j: w.cpu() for j, w in weights.items()}
        spent = time.perf_counter() - t0
        log.info("channel attention for %s computed in %.1fs", layers, spent)
        return {"weights": weights, "time_s": spent}

    value, hit = cached(cache_dir, "channel_attention", parts, compute)
    if hit:
        log.info("channel attention for %s read from the cache (computed in %.1fs)", layers, value["time_s"])
    return Attention(value["weights"], value["time_s"], hit)
