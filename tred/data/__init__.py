"""Datasets: `build_data(cfg.dataset, seed)` returns an object with the image-data interface.

Interface (see `InMemoryImages`): `num_classes`, `train_size`, `test_size`, `train_labels()`,
`batches_per_epoch(batch_size)`, `train_stream(batch_size, seed, start)` (infinite, a pure
function of seed and iteration), `eval_batches(split, batch_size)` and `split_digest` (names
the exact training and evaluation sets; a checkpoint of another split is not resumed). Images are float in
[0, 1]; the backbone applies its own normalization.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tred.cache import cache_key
from tred.data.embedded import LOADERS
from tred.data.layouts import DATASETS
from tred.data.memory import InMemoryImages
from tred.data.splits import stratified_split, training_subset
from tred.errors import ConfigError

EMBEDDED = tuple(LOADERS)


def _to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """N x H x W (x C) uint8 -> N x 3 x size x size uint8 (grayscale repeated, antialiased resize)."""
    x = torch.from_numpy(images)
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    out = []
    for chunk in x.split(512):
        r = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(r.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out).contiguous()


def build_embedded(cfg, seed: int) -> InMemoryImages:
    images, labels = LOADERS[cfg.name]()
    train_idx, test_idx = stratified_split(labels, cfg.train_per_class, cfg.split_seed, cfg.test_per_class)
    pos, held_out = training_subset(labels[train_idx], cfg, seed)
    keep = train_idx[pos]
    if held_out is not None:  # tuning: evaluate on a held-out part of the training split, never the test split
        test_idx = train_idx[held_out]
    data = InMemoryImages(
        _to_tensor(images[keep], cfg.image_size), torch.from_numpy(labels[keep]),
        _to_tensor(images[test_idx], cfg.image_size), torch.from_numpy(labels[test_idx]),
        cfg.num_classes, cfg.augment)
    # the packaged images are fixed: their indices and labels name the split
    data.split_digest = cache_key({"train": [keep.tolist(), labels[keep].tolist()],
                                   "test": [test_idx.tolist(), labels[test_idx].tolist()]})
    data.train_digest = cache_key({"train": [keep.tolist(), labels[keep].tolist()]})
    return data


def build_data(cfg, seed: int, num_workers: int = 0):
    """The dataset named by `cfg.name`, with its split and the seeded sample-rate subset.

    `num_workers` decoding processes serve on-disk datasets (embedded ones are in memory)."""
    if cfg.name in LOADERS:
        return build_embedded(cfg, seed)
    if cfg.name in DATASETS:
        from tred.data import disk  # late: defers PIL and torchvision to runs of on-disk datasets

        return disk.build_disk(cfg, seed, num_workers)
    raise ConfigError(f"unknown dataset `{cfg.name}`; valid: {sorted(EMBEDDED + tuple(DATASETS))}")
