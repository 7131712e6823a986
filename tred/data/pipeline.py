"""The image pipeline of the L2-SP / DELTA lab, on PIL images, seeded per sample.

train: resize to `resize` (shorter side when `keep_aspect`, else a square), random crop
`crop`, horizontal flip; test: the same resize, center crop `crop`. Output: float in [0, 1],
3 x crop x crop (the backbone normalizes). `decode` is the resize alone, as a square uint8
tensor, for datasets decoded once into memory (the crops then run on tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from tred.errors import DataError


@dataclass(frozen=True)
class Pipeline:
    resize: int = 256
    crop: int = 224
    keep_aspect: bool = False
    hflip: bool = True

    @staticmethod
    def _open(path: str, draft: int | None) -> Image.Image:
        with Image.open(path) as img:
            if draft:  # JPEG: decode at the smallest 1/2^k scale still >= draft x draft
                img.draft("RGB", (draft, draft))
            return img.convert("RGB")

    def load(self, path: str, draft: int | None = None) -> Image.Image:
        try:
            return self._open(path, draft)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for truncated or foreign files
            raise DataError(f"cannot read image {path} ({type(exc).__name__}: {exc}); "
                            "the file is corrupt or not an image: fetch it again") from None

    def problem(self, path: str) -> str | None:
        """Why `path` cannot be decoded, or None. JPEGs are decoded at 1/8 scale: every coded byte
        is still read, so a truncated file fails. Run on every image before training."""
        try:
            self._open(path, draft=1)
        except Exception as exc:  # noqa: BLE001 - as in load
            return f"{type(exc).__name__}: {exc}"
        return None

    def _resize(self, img: Image.Image) -> Image.Image:
        size = self.resize if self.keep_aspect else [self.resize, self.resize]
        return TF.resize(img, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)

    def decode(self, path: str) -> torch.Tensor:
        """3 x resize x resize uint8: the resized image (center-cropped to a square when
        `keep_aspect`). JPEGs are decoded at a reduced scale when that still covers `resize`
        (PIL's draft mode), which makes decoding a large photo several times faster."""
        img = self._resize(self.load(path, draft=self.resize))
        if self.keep_aspect:
            img = TF.center_crop(img, [self.resize, self.resize])
        return TF.pil_to_tensor(img)

    def train(self, path: str, gen: torch.Generator) -> torch.Tensor:
        img = self._resize(self.load(path))
        w, h = img.size
        top = int(torch.randint(0, h - self.crop + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - self.crop + 1, (1,), generator=gen))
        img = TF.crop(img, top, left, self.crop, self.crop)
        if self.hflip and bool(torch.rand(1, generator=gen) < 0.5):
            img = TF.hflip(img)
        return TF.pil_to_tensor(img).float().div_(255)

    def test(self, path: str) -> torch.Tensor:
        img = TF.center_crop(self._resize(self.load(path)), [self.crop, self.crop])
        return TF.pil_to_tensor(img).float().div_(255)
