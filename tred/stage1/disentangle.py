"""Stage 1 of TRED: train the disentangler of each TRED layer on the frozen source's feature maps.

Per batch and layer, with z = FM_j(w0, x), (z_r, z_i) = (E_r(z), E_i(z)), p = spatial mean:
    loss = CE(h_r(p(z_r)), y) + rec_weight * mean (z_r + z_i - z)^2  [/ mean z^2 with rec_normalize]
           + tie_weight * mean (z_r - z)^2 / mean z^2   (0 by default)
           - mmd_weight * MMD^2(p(z_r), p(z_i))        (methods with max_mmd)
           + mi_weight * max(I_CLUB(p(z_r); p(z_i)), 0)  (methods with min_mi)
The CLUB network q(z_i | z_r) takes its own Adam step(s) on detached features before each
disentangler step. It is fitted for every method, so the MI estimate is a diagnostic everywhere.
This recipe is this project's reconstruction (see docs/tred.md).

`projection_split` (`parts=projection`, the default) is the closed-form stage 1 on plain
(images, labels) batches: `train_disentangler` (the pipeline) and `tred.library`
(`TRED.fit_split`) both call it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from tred.data.memory import seeded_generator
from tred.errors import ConfigError
from tred.models.hooks import FeatureTaps
from tred.stage1.disentangler import Disentangler, class_mean_basis
from tred.stage1.estimators import CLUB, mmd2

# method name -> (maximize MMD, minimize MI)
METHODS = {"max_mmd": (True, False), "min_mi": (False, True), "max_mmd_min_mi": (True, True)}
DIAGNOSTIC_SPLITS = ("train", "test")
FAST_ADAM = {"fused": True}  # one fused kernel per update: ~25% faster stage-1 steps on CPU


def separation(name: str) -> tuple[bool, bool]:
    if name not in METHODS:
        raise ConfigError(f"disentangle.name={name!r}; valid: {sorted(METHODS)}")
    return METHODS[name]


@torch.no_grad()
def source_feature_maps(source, layers, batches, device, max_images: int | None = None):
    """(FM_j(w0, x) of every layer over `batches`, concatenated on `device`; the labels), stopping
    after the first `max_images` images when given."""
    taps = FeatureTaps(source.body, layers)
    maps, labels = defaultdict(list), []
    try:
        source.eval()
        for x, y in batches:
            source(x.to(device))
            for name, fm in taps.pop().items():
                maps[name].append(fm)
            labels.append(y.to(device))
            if max_images is not None and sum(map(len, labels)) >= max_images:
                break
    finally:
        taps.close()
    keep = slice(0, max_images)
    return {n: torch.cat(v)[keep] for n, v in maps.items()}, torch.cat(labels)[keep]


def epoch_batches(cfg, source, layers, data, cached, seed: int, epoch: int, device) -> Iterator:
    """(maps, labels) batches of one epoch: slices of the cached maps, or fresh augmented ones."""
    if cached is not None:
        maps, labels = cached
        n = len(labels)
        perm = torch.randperm(n, generator=seeded_generator(seed, epoch)).to(device)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) > 1:  # BatchNorm needs two samples
                yield {k: v[idx] for k, v in maps.items()}, labels[idx]
        return
    per_epoch = data.batches_per_epoch(cfg.batch_size)
    stream = data.train_stream(cfg.batch_size, seed, start=epoch * per_epoch)
    for _ in range(per_epoch):
        yield source_feature_maps(source, layers, [next(stream)], device)


class Stage1:
    """The trainable parts of stage 1 (disentangler, CLUB monitors) and their optimizers."""

    def __init__(self, cfg, channels: dict[str, int], num_classes: int, seed: int, device):
        self.cfg = cfg
        self.use_mmd, self.use_mi = separation(cfg.name)
        with torch.random.fork_rng(devices=[]):  # seeded init that leaves the global RNG alone
            torch.manual_seed(seed)
            self.model = Disentangler(channels, num_classes, cfg.parts).to(device)
            self.clubs = {n: CLUB(c, c, cfg.club_hidden, cfg.club_logvar_limit).to(device) for n, c in channels.items()}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **FAST_ADAM)
        self.club_opt = torch.optim.Adam([p for c in self.clubs.values() for p in c.parameters()], lr=cfg.club_lr,
                                         **FAST_ADAM)

    def step(self, maps: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, float]:
        cfg, stats = self.cfg, defaultdict(float)
        self.model.train()
        total = 0.0
        for layer, z in maps.items():
            zr, zi = self.model[layer](z)
            pr, pi = zr.mean((2, 3)), zi.mean((2, 3))
            club = self.clubs[layer]
            for _ in range(cfg.club_steps):
                self.club_opt.zero_grad(set_to_none=True)
                (-club.log_likelihood(pr.detach(), pi.detach())).backward()
                self.club_opt.step()
            logits = self.model[layer].head(pr)
            ce = F.cross_entropy(logits, y)
            energy = z.pow(2).mean().clamp_min(1e-12)
            rec = (zr + zi - z).pow(2).mean()
            if cfg.rec_normalize:
                rec = rec / energy
            tie = (zr - z).pow(2).mean() / energy
            with torch.set_grad_enabled(self.use_mmd):  # only a diagnostic otherwise
                mmd = mmd2(pr, pi, cfg.kernel_alphas)
            with torch.set_grad_enabled(self.use_mi):
                mi = club(pr, pi)
            loss = ce + cfg.rec_weight * rec
            if cfg.tie_weight > 0:
                loss = loss + cfg.tie_weight * tie
            if self.use_mmd:
                loss = loss - cfg.mmd_weight * mmd
            if self.use_mi:  # MI >= 0: a negative estimate only means q lags behind, no signal in it
                loss = loss + cfg.mi_weight * mi.clamp_min(0)
            total = total + loss
            for k, v in (("ce", ce), ("rec", rec), ("tie", tie), ("mmd2", mmd), ("mi", mi), ("loss", loss)):
                stats[k] += float(v.detach()) / len(maps)
            stats["acc"] += 100.0 * float((logits.argmax(1) == y).float().mean()) / len(maps)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return stats


def train_disentangler(cfg, source, layers, data, num_classes: int, seed: int, device,
                       eval_batch_size: int = 256, on_epoch: Callable[[dict], None] | None = None):
    """Train stage 1; returns (Disentangler in eval mode, per-epoch history, un-augmented train maps)."""
    batches = data.eval_batches("train", eval_batch_size)
    if cfg.parts == "projection":
        model, train = projection_split(source, layers, batches, num_classes, probe_steps=cfg.probe_steps,
                                        probe_lr=cfg.probe_lr, seed=seed, device=device)
        return model, [], train
    train = source_feature_maps(source, layers, batches, device)
    channels = {n: int(fm.shape[1]) for n, fm in train[0].items()}
    stage = Stage1(cfg, channels, num_classes, seed, device)
    history = []
    for epoch in range(cfg.epochs):
        sums, n = defaultdict(float), 0
        for maps, y in epoch_batches(cfg, source, layers, data, None if cfg.augment else train, seed, epoch, device):
            for k, v in stage.step(maps, y).items():
                sums[k] += v * len(y)
            n += len(y)
        row = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()}}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    stage.model.eval()
    for p in stage.model.parameters():
        p.requires_grad_(False)
    return stage.model, history, train


def projection_split(source, layers, batches, num_classes: int, *, probe_steps: int, probe_lr: float, seed: int,
                     device, max_images: int | None = None):
    """TRED's default stage 1 from (images, labels) `batches`: the frozen source's maps z of
    `layers` (the first `max_images` images when given), then `fit_projection` on them. Returns
    (the frozen Disentangler, (maps, labels)). `source.body` holds the layers; `source(x)` runs it."""
    train = source_feature_maps(source, layers, batches, device, max_images)
    return fit_projection(train, num_classes, probe_steps, probe_lr, seed, device), train


def fit_projection(train, num_classes: int, probe_steps: int, probe_lr: float, seed: int, device) -> Disentangler:
    """The closed-form split (`parts=projection`) of the training (maps, labels) `train`: per
    layer, P from the class means of pool(z) (`class_mean_basis`), and h_r fitted on pool(P z) as
    the probes are (`probe_steps` of Adam at `probe_lr`); nothing else is trained."""
    channels = {n: int(fm.shape[1]) for n, fm in train[0].items()}
    model = Disentangler(channels, num_classes, "projection").to(device)
    for n, fm in train[0].items():
        m = model[n]
        m.set_basis(class_mean_basis(pooled(fm), train[1]))
        with torch.no_grad():
            z_r = pooled(m.relevant_part(fm))
        m.head.load_state_dict(fit_probe(z_r, train[1], num_classes, probe_steps, probe_lr, seed).state_dict())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def fit_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int, lr: float,
              seed: int) -> torch.nn.Linear:
    """Full-batch logistic regression (Adam) on pooled features: the linear probe of stage 1."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = torch.nn.Linear(features.shape[1], num_classes).to(features.device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(probe(features), labels).backward()
        opt.step()
    return probe.eval()


@torch.no_grad()
def accuracy(head, features: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((head(features).argmax(1) == labels).float().mean())


def pooled(fm: torch.Tensor) -> torch.Tensor:
    return fm.mean((2, 3))


def evaluate_stage1(cfg, model: Disentangler, source, layers, data, train, num_classes: int, seed: int,
                    device, eval_batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Per layer, the three checks of a stage 1 that does what it says, measured on the first
    `cfg.diagnostics_max_images` images (null: all) of `cfg.diagnostics_split`:
    - the relevant part keeps the target information: accuracy of h_r(pool(E_r(z))) next to a
      linear probe on pool(z), the full source feature (`relevant_acc`, `probe_acc`);
    - the irrelevant part loses it: a linear probe on pool(z_i) (`irrelevant_probe_acc`; near
      chance, 100 / classes, when the split works);
    - the reference stays close to the source map: the gap mean (E_r(z) - z)^2 / mean z^2
      (0 = the map itself, 1 = as far as zero is).
    The probes are fitted on the training split's maps."""
    if cfg.diagnostics_split not in DIAGNOSTIC_SPLITS:
        raise ConfigError(f"disentangle.diagnostics_split={cfg.diagnostics_split!r}; valid: {list(DIAGNOSTIC_SPLITS)}")
    cap = cfg.diagnostics_max_images
    if cfg.diagnostics_split == "train":
        evaluated = train if cap is None else ({n: v[:cap] for n, v in train[0].items()}, train[1][:cap])
    else:
        evaluated = source_feature_maps(source, layers, data.eval_batches("test", eval_batch_size), device, cap)
    out = {}
    for layer in layers:
        m, z = model[layer], evaluated[0][layer]
        with torch.no_grad():
            z_r, z_i = m(z)
            z_i_train = m(train[0][layer])[1]
        gap = float(((z_r - z) ** 2).mean() / (z ** 2).mean().clamp_min(1e-12))
        probe = fit_probe(pooled(train[0][layer]), train[1], num_classes, cfg.probe_steps, cfg.probe_lr, seed)
        probe_i = fit_probe(pooled(z_i_train), train[1], num_classes, cfg.probe_steps, cfg.probe_lr, seed)
        out[layer] = {"relevant_acc": accuracy(m.head, pooled(z_r), evaluated[1]),
                      "probe_acc": accuracy(probe, pooled(z), evaluated[1]),
                      "irrelevant_probe_acc": accuracy(probe_i, pooled(z_i), evaluated[1]), "reference_gap": gap}
    return out, len(evaluated[1])
