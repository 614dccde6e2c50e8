"""The views the loader's workers make on the CPU: the paper's training augmentation (``Augment``) and the
test-time centre crop (``CenterCrop``).

Augmentation is a pure function of (image, seed): the sampler hands every index its own seed, so the images a
run sees do not depend on the number of workers and are the same after ``--resume``. ``augment_device`` runs the
same augmentation, with the same ranges, as batched operations on the device.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image


@dataclass(frozen=True)
class Augment:
    """The official augmentation: random resized crop, flip, additive brightness, saturation."""

    size: int
    crop_scale: tuple[float, float] = (0.33, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness_delta: float = 32 / 255
    saturation_range: tuple[float, float] = (0.5, 1.5)

    @classmethod
    def from_config(cls, cfg: Any) -> Augment:
        """The augmentation a stage config (``CommonConfig``) asks for; the device augmentation takes it too."""
        return cls(size=cfg.image_size, crop_scale=(cfg.crop_scale_min, 1.0), flip=cfg.flip,
                   brightness_delta=cfg.brightness_delta, saturation_range=tuple(cfg.saturation_range))

    def crop_box(self, width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
        """(top, left, h, w) as torchvision's RandomResizedCrop draws it, from a local RNG."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.crop_scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h), rng.randint(0, width - w), h, w
        side = min(width, height)  # fallback: the central square
        return (height - side) // 2, (width - side) // 2, side, side

    def __call__(self, img: Image.Image, seed: int) -> torch.Tensor:
        rng = random.Random(seed)
        tensor = TF.pil_to_tensor(img)  # (3, h, w) uint8
        top, left, h, w = self.crop_box(img.width, img.height, rng)
        tensor = TF.resized_crop(tensor, top, left, h, w, [self.size, self.size], antialias=True)
        if self.flip and rng.random() < 0.5:
            tensor = TF.horizontal_flip(tensor)
        out = tensor.float().div_(255.0)
        if self.brightness_delta > 0:
            out = (out + rng.uniform(-self.brightness_delta, self.brightness_delta)).clamp_(0.0, 1.0)
        lo, hi = self.saturation_range
        if (lo, hi) != (1.0, 1.0):
            out = TF.adjust_saturation(out, rng.uniform(lo, hi)).clamp_(0.0, 1.0)
        return out.mul_(2.0).sub_(1.0)  # [-1, 1]


@dataclass(frozen=True)
class CenterCrop:
    """Test-time view (official): centre crop of 85% of the shorter side, resized to ``size``."""

    size: int
    fraction: float = 0.85

    def __call__(self, img: Image.Image, seed: int = 0) -> torch.Tensor:
        tensor = TF.pil_to_tensor(img)
        side = int(round(min(img.width, img.height) * self.fraction))
        tensor = TF.center_crop(tensor, [side, side])
        tensor = TF.resize(tensor, [self.size, self.size], antialias=True)
        return tensor.float().div_(127.5).sub_(1.0)
