"""Paper-scale datasets read from disk in their native layouts (`tred.data.layouts`).

`build_disk(cfg, seed)` reads the layout under `dataset.root` (default `$TRED_DATA/<name>`,
else `./data/<name>`, the name of the dataset's record), optionally downloads it first
(`dataset.download=true`), checks that every listed image exists, keeps the seeded
class-balanced `sample_rate` subset of the training split and returns a `DiskImages` with the
same interface as `InMemoryImages`, or, with `dataset.in_memory=true`, an `InMemoryImages`
holding every image decoded once at `resize` px.
Either way every image of the run is decoded before training (a corrupt file fails the run
then, not at evaluation), and `split_digest` names the exact file lists, so a checkpoint is
never resumed on another split (tred/run.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tred.cache import cache_key
from tred.data.download import install
from tred.data.layouts import DATASETS, Layout
from tred.data.memory import ImageData, InMemoryImages, seeded_generator
from tred.data.pipeline import Pipeline
from tred.data.splits import training_subset
from tred.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def dataset_root(cfg) -> Path:
    """`dataset.root`, else the record's folder under $TRED_DATA (else ./data)."""
    if cfg.root:
        return Path(os.path.expanduser(str(cfg.root)))
    return Path(os.environ.get("TRED_DATA", "./data")) / DATASETS[cfg.name].name


def read_layout(cfg) -> Layout:
    """The dataset's train/test lists (downloading first if asked), every listed file checked."""
    record, root = DATASETS[cfg.name], dataset_root(cfg)
    if cfg.download:
        try:  # already there (extracted by hand, or a read-only copy): nothing to fetch
            layout = record.read(root, cfg)
        except DataError:
            install(cfg.name, record.source, root)
            layout = record.read(root, cfg)
    else:
        layout = record.read(root, cfg)
    if cfg.num_classes is not None and cfg.num_classes != len(layout.classes):
        raise DataError(f"dataset {cfg.name} in {root} has {len(layout.classes)} classes, the config says "
                        f"dataset.num_classes={cfg.num_classes}: incomplete dataset or wrong root")
    return layout


class ImageList(Dataset):
    """Item = (index, augmentation seed or None): a training or a test view of image `index`."""

    def __init__(self, items, pipeline: Pipeline):
        self.items, self.pipeline = items, pipeline

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        i, aug = key
        path, label = self.items[i]
        x = self.pipeline.test(path) if aug is None else self.pipeline.train(path, seeded_generator(*aug))
        return x, label


class DiskImages(ImageData):
    """Image lists on disk with the `InMemoryImages` interface, decoded by DataLoader workers."""

    def __init__(self, train, test, num_classes: int, pipeline: Pipeline, num_workers: int = 0):
        self.train_items, self.test_items = list(train), list(test)
        self.num_classes, self.pipeline, self.num_workers = num_classes, pipeline, num_workers

    @property
    def train_size(self) -> int:
        return len(self.train_items)

    @property
    def test_size(self) -> int:
        return len(self.test_items)

    def train_labels(self) -> torch.Tensor:
        return torch.tensor([y for _, y in self.train_items], dtype=torch.long)


    def batch_keys(self, iteration: int, batch_size: int, seed: int) -> list:
        """The (index, augmentation seed) of each image of one iteration: a pure function of its args."""
        idx = self.batch_indices(iteration, batch_size, seed).tolist()
        return [(i, (seed, 2, iteration, j)) for j, i in enumerate(idx)]

    def _loader(self, items, batch_sampler) -> DataLoader:
        workers = self.num_workers
        return DataLoader(ImageList(items, self.pipeline), batch_sampler=batch_sampler, num_workers=workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                          prefetch_factor=4 if workers > 0 else None)

    def train_stream(self, batch_size: int, seed: int, start: int = 0) -> Iterator:
        self.batches_per_epoch(batch_size)

        def keys():
            it = start
            while True:
                yield self.batch_keys(it, batch_size, seed)
                it += 1

        yield from self._loader(self.train_items, keys())

    def eval_batches(self, split: str, batch_size: int) -> Iterator:
        """Un-augmented batches of `split` ("train" or "test") in a fixed order."""
        items = self.train_items if split == "train" else self.test_items
        batches = [[(i, None) for i in range(s, min(s + batch_size, len(items)))]
                   for s in range(0, len(items), batch_size)]
        yield from self._loader(items, batches)


def build_disk(cfg, seed: int, num_workers: int = 0) -> DiskImages:
    layout = read_layout(cfg)
    keep, held_out = training_subset(np.array([y for _, y in layout.train]), cfg, seed)
    # tuning: evaluate on a held-out part of the training split, never the test split
    test = layout.test if held_out is None else [layout.train[i] for i in held_out]
    resize = cfg.resize or cfg.image_size
    if resize < cfg.image_size:
        raise ConfigError(f"dataset.resize={resize} is smaller than the crop dataset.image_size={cfg.image_size}")
    pipe = Pipeline(resize, cfg.image_size, cfg.keep_aspect, cfg.augment.hflip)
    train = [layout.train[i] for i in keep]
    if cfg.in_memory:
        data = decode_into_memory(train, test, len(layout.classes), pipe, cfg.augment)
    else:
        check_images(train + test, pipe)
        data = DiskImages(train, test, len(layout.classes), pipe, num_workers)
    data.split_digest = split_digest(train, test, dataset_root(cfg))
    data.train_digest = split_digest(train, [], dataset_root(cfg))
    return data


def split_digest(train, test, root: Path) -> str:
    """Digest (`tred.cache.cache_key`) of the run's training and evaluation lists: paths relative
    to the dataset root (moving the root changes nothing) and labels, in order."""
    rel = lambda items: [(os.path.relpath(os.path.abspath(p), os.path.abspath(root)), int(y))  # noqa: E731
                         for p, y in items]
    return cache_key({"train": rel(train), "test": rel(test)})


def check_images(items, pipe: Pipeline, show: int = 5) -> None:
    """Decode every image once before training; one `DataError` lists the files that fail."""
    start = time.perf_counter()
    bad = [f"{path} ({why})" for path, _ in items if (why := pipe.problem(path)) is not None]
    if bad:
        more = f" (and {len(bad) - show} more)" if len(bad) > show else ""
        raise DataError(f"{len(bad)} of {len(items)} images cannot be decoded: {'; '.join(bad[:show])}{more}. "
                        "Fetch them again or remove them (removing files changes the seeded split, "
                        "so unfinished runs of the old split cannot resume: docs/reliability.md)")
    log.info("checked %d images in %.1f s", len(items), time.perf_counter() - start)


def decode_into_memory(train, test, num_classes: int, pipe: Pipeline, augment) -> InMemoryImages:
    """Every image decoded and resized once (`Pipeline.decode`), held as uint8; the random and
    center crops to `pipe.crop` then run on tensors, so evaluating thousands of images costs
    the forward passes alone."""

    def stack(items):
        x = torch.empty(len(items), 3, pipe.resize, pipe.resize, dtype=torch.uint8)
        for i, (path, _) in enumerate(items):
            x[i] = pipe.decode(path)
        return x, torch.tensor([y for _, y in items], dtype=torch.long)

    return InMemoryImages(*stack(train), *stack(test), num_classes, augment, crop=pipe.crop)
