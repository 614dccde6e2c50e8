"""The paper's training augmentation as batched operations on the device (``--set gpu_augment=true``).

With ``gpu_augment`` the loader's workers only decode: each image is placed, at its own resolution, in the
top-left corner of a fixed ``side`` x ``side`` uint8 canvas (``Canvas``; images larger than the canvas are first
scaled down to fit), and its extent goes along. ``DeviceAugment`` then draws every image's own parameters on the
device and applies, in the order and with the ranges of ``augment.Augment`` (the CPU pipeline):

1. random resized crop: area fraction U(crop_scale), log aspect ratio U(log 3/4, log 4/3), ten tries then the
   central square, drawn in the original image's pixels exactly as ``Augment.crop_box`` draws them; the crop is
   resampled to ``size`` x ``size`` by ``torchvision.ops.roi_align`` (bilinear, averaging ceil(crop/size)^2
   samples per output pixel when it shrinks: a box filter where the CPU uses torchvision's antialiased bilinear),
   then rounded to whole 8-bit levels as the CPU's uint8 resize is;
2. horizontal flip with probability 0.5;
3. additive brightness U(-delta, delta) on [0, 1], clipped;
4. saturation: blend with the grey image (0.2989 R + 0.587 G + 0.114 B) by a factor U(saturation_range), clipped;
5. [0, 1] -> [-1, 1].

The parameters come from a generator seeded by (seed, rank, step), so a resumed run sees the same augmentation as
the uninterrupted one without any state in the checkpoint. Every operation is a device kernel: nothing reads a
value back to the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.ops import roi_align

from .augment import Augment

GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale, which adjust_saturation blends with
CROP_TRIES = 10  # Augment.crop_box: ten draws, then the central square


def canvas_side(source: Any, image_size: int, probes: int = 8) -> int:
    """The canvas side for a dataset: its first readable image's longer side, kept between ``image_size`` (no
    canvas smaller than the output) and 2 x ``image_size`` (a crop of a third of the area is then still at least
    ``image_size`` pixels across, so scaling larger images down to fit loses nothing that the crop would keep).
    A dataset of one image size (STL-10, CIFAR-10, a pre-resized folder) is thus augmented at its own size."""
    for index in range(min(probes, len(source))):
        try:
            image = source.load(index)[0]
        except Exception:  # noqa: BLE001 - an unreadable file is counted by the loader; try the next one
            continue
        return int(min(max(image.width, image.height, image_size), 2 * image_size))
    return 2 * image_size


@dataclass(frozen=True)
class Canvas:
    """Loader transform under ``gpu_augment``: (uint8 canvas (3, side, side), extent (4,) int64).

    The extent is (height, width) of the original image, then (height, width) of the region of the canvas it
    fills. The rest of the canvas repeats the last row and column, so that resampling next to the image's edge
    sees the edge's value, as resizing the cropped image alone would.
    """

    side: int

    def __call__(self, img: Image.Image, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = TF.pil_to_tensor(img)  # (3, h, w) uint8
        height, width = pixels.shape[-2:]
        if max(height, width) > self.side:
            scale = self.side / max(height, width)
            fit = [max(1, min(self.side, round(height * scale))), max(1, min(self.side, round(width * scale)))]
            pixels = TF.resize(pixels, fit, antialias=True)
        fill_h, fill_w = pixels.shape[-2:]
        canvas = pixels.new_empty(3, self.side, self.side)
        canvas[:, :fill_h, :fill_w] = pixels
        canvas[:, :fill_h, fill_w:] = pixels[:, :, fill_w - 1 :]
        canvas[:, fill_h:, :] = canvas[:, fill_h - 1 : fill_h, :]
        return canvas, torch.tensor([height, width, fill_h, fill_w], dtype=torch.long)


@dataclass
class DeviceAugment:
    """``augment.Augment`` on a batch of canvases, with per-image parameters (see the module docstring). It holds the
    CPU pipeline's own ``Augment``, so that the two read their ranges from one place and cannot drift apart."""

    params: Augment  # size, crop_scale, ratio, flip, brightness_delta, saturation_range
    seed: int = 0
    rank: int = 0
    _generator: torch.Generator | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: Any, rank: int = 0) -> DeviceAugment:
        return cls(Augment.from_config(cfg), seed=cfg.seed, rank=rank)

    def generator_for(self, step: int, device: torch.device) -> torch.Generator:
        """The generator, seeded by (seed, rank, step) alone; seeding is host-side: it waits for nothing."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
        return self._generator.manual_seed(hash((self.seed, self.rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)

    def __call__(self, canvas: torch.Tensor, extents: torch.Tensor, step: int) -> torch.Tensor:
        return self.apply(canvas, extents, self.generator_for(step, canvas.device))

    def crop_boxes(self, extents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, 4) float (top, left, height, width) in the original images' pixels, as ``Augment.crop_box``."""
        batch, device = extents.shape[0], extents.device
        height, width = extents[:, 0:1].double(), extents[:, 1:2].double()  # (B, 1)
        uniform = torch.rand(batch, CROP_TRIES, 2, generator=generator, device=device, dtype=torch.float64)
        lo, hi = self.params.crop_scale
        target = height * width * (lo + (hi - lo) * uniform[..., 0])
        log_lo, log_hi = math.log(self.params.ratio[0]), math.log(self.params.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * uniform[..., 1])
        w = torch.round(torch.sqrt(target * aspect))  # round half to even, as Python's round
        h = torch.round(torch.sqrt(target / aspect))
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (B, tries)
        first = fits.float().argmax(dim=1, keepdim=True)  # the first try that fits (0 when none does)
        found = fits.any(dim=1, keepdim=True)
        side = torch.minimum(height, width)  # fallback: the central square
        h = torch.where(found, h.gather(1, first), side)
        w = torch.where(found, w.gather(1, first), side)
        # random.randint(0, H - h) is uniform over H - h + 1 integers; the fallback is centred
        position = torch.rand(batch, 2, generator=generator, device=device, dtype=torch.float64)
        top = torch.where(found, torch.floor(position[:, :1] * (height - h + 1)), torch.floor((height - side) / 2))
        left = torch.where(found, torch.floor(position[:, 1:] * (width - w + 1)), torch.floor((width - side) / 2))
        return torch.cat([top, left, h, w], dim=1).float()

    def apply(self, canvas: torch.Tensor, extents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 canvases (B, 3, S, S) and extents (B, 4) -> augmented float images (B, 3, size, size) in [-1, 1]."""
        batch, device = canvas.shape[0], canvas.device
        boxes = self.crop_boxes(extents, generator)
        top, left, h, w = boxes.unbind(dim=1)
        # original pixels -> canvas pixels (differs from 1 only for images scaled down to fit the canvas)
        scale_y = extents[:, 2].float() / extents[:, 0].float()
        scale_x = extents[:, 3].float() / extents[:, 1].float()
        index = torch.arange(batch, device=device, dtype=torch.float32)
        rois = torch.stack([index, left * scale_x, top * scale_y, (left + w) * scale_x, (top + h) * scale_y], dim=1)
        size = self.params.size
        out = roi_align(canvas.float(), rois, (size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out = out.round_().clamp_(0, 255).div_(255.0)  # (B, 3, size, size) in [0, 1], on 8-bit levels
        draws = torch.rand(batch, 3, generator=generator, device=device)  # flip, brightness, saturation
        if self.params.flip:
            out = torch.where((draws[:, 0] < 0.5).view(-1, 1, 1, 1), out.flip(-1), out)
        if self.params.brightness_delta > 0:
            delta = (2 * draws[:, 1] - 1) * self.params.brightness_delta
            out = (out + delta.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
        lo, hi = self.params.saturation_range
        if (lo, hi) != (1.0, 1.0):
            factor = (lo + (hi - lo) * draws[:, 2]).view(-1, 1, 1, 1)
            red, green, blue = GREY_WEIGHTS  # Python numbers: no host-to-device copy
            grey = red * out[:, 0:1] + green * out[:, 1:2] + blue * out[:, 2:3]
            out = (factor * out + (1 - factor) * grey).clamp_(0.0, 1.0)
        return out.mul_(2.0).sub_(1.0)
