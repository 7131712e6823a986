"""In-memory image data: uint8 tensors, augmentation on tensors, a deterministic batch stream.

The stream is a pure function of (seed, iteration): the permutation of epoch e is drawn from
a generator seeded with (seed, e) and the augmentation of iteration i from one seeded with
(seed, i). So a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from tred.errors import ConfigError


def seeded_generator(*keys: int) -> torch.Generator:
    """A torch generator seeded by `keys` (e.g. seed, stream, epoch): the same keys, the same draws."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def random_crop_flip(x: torch.Tensor, padding: int, hflip: bool, gen: torch.Generator,
                     size: int | None = None) -> torch.Tensor:
    """Pad by `padding` (reflect), crop `size` x `size` (default: the input size, square
    inputs) at a random offset, maybe flip."""
    b, _, h, w = x.shape
    size = size or h
    out = x
    if padding > 0 or size < h:
        padded = F.pad(x, (padding,) * 4, mode="reflect") if padding > 0 else x
        offs = torch.randint(0, h + 2 * padding - size + 1, (b, 2), generator=gen)
        out = torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offs.tolist())])
    if hflip:
        flip = torch.rand(b, generator=gen) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


class ImageData:
    """What the engine needs from a dataset; `InMemoryImages` and `DiskImages` implement it.

    `num_classes`, `train_size`, `test_size`, `train_labels()`, `train_stream(batch_size, seed,
    start)` (infinite, a pure function of seed and iteration), `eval_batches(split, batch_size)`
    (fixed order, no augmentation); images are float in [0, 1].
    """

    num_classes: int
    train_size: int
    split_digest: str = ""  # set by the builders (tred/data/__init__.py, disk.py)
    train_digest: str = ""  # the training images alone (what a run trains on), set by the builders

    def batches_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last partial batch is dropped); fails early when none fits."""
        if batch_size > self.train_size:
            raise ConfigError(
                f"trainer.batch_size={batch_size} is larger than the training set "
                f"({self.train_size} images; batches drop the last partial one): lower the "
                "batch size or raise dataset.sample_rate / dataset.train_per_class")
        return self.train_size // batch_size

    def batch_indices(self, iteration: int, batch_size: int, seed: int) -> torch.Tensor:
        """Training-set positions of one iteration's batch, a pure function of its args: a slice
        of the permutation of the iteration's epoch, seeded with (seed, epoch)."""
        epoch, pos = divmod(iteration, self.batches_per_epoch(batch_size))
        perm = torch.randperm(self.train_size, generator=seeded_generator(seed, 1, epoch))
        return perm[pos * batch_size:(pos + 1) * batch_size]


class InMemoryImages(ImageData):
    """Images (N x 3 x S x S uint8) and labels held in memory, with the train/test split done."""

    def __init__(self, train_x, train_y, test_x, test_y, num_classes: int, augment, crop: int | None = None):
        self.train_x, self.train_y = train_x, train_y
        self.test_x, self.test_y = test_x, test_y
        self.num_classes = num_classes
        self.augment = augment
        # Images stored larger than `crop` (decoded once at the resize size): training takes a
        # random crop, evaluation the center crop, as the on-disk pipeline does.
        self.crop = crop or train_x.shape[-1]

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    @property
    def test_size(self) -> int:
        return len(self.test_y)

    def train_labels(self) -> torch.Tensor:
        return self.train_y

    def train_batch(self, iteration: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented batch of one iteration, as float in [0, 1]."""
        idx = self.batch_indices(iteration, batch_size, seed)
        x = self.train_x[idx].float().div_(255)
        gen = seeded_generator(seed, 2, iteration)
        x = random_crop_flip(x, self.augment.crop_padding, self.augment.hflip, gen, self.crop)
        return x, self.train_y[idx]

    def train_stream(self, batch_size: int, seed: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        it = start
        while True:
            yield self.train_batch(it, batch_size, seed)
            it += 1

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Un-augmented batches of `split` ("train" or "test") in a fixed order."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        top, left = round((x.shape[-2] - self.crop) / 2), round((x.shape[-1] - self.crop) / 2)  # as torchvision
        x = x[..., top:top + self.crop, left:left + self.crop]
        for i in range(0, len(y), batch_size):
            yield x[i:i + batch_size].float().div_(255), y[i:i + batch_size]
