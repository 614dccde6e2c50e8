"""``spotart voc-seg``: PASCAL VOC 2012 semantic segmentation, train -> val, mean IoU over 21 classes (paper: 38.1).

An FCN (Long et al., 2015) on the transferred conv1..conv5, as the paper's comparison uses (random init 19.8,
ImageNet-supervised AlexNet 48.0): a new "fc6" (3x3 conv, ReLU, dropout) on conv5 scores the 21 classes at
stride 16; conv2's features (stride 8) are scored too and added to the 2x-upsampled stride-16 scores (the FCN-16s/8s
skip); the sum is upsampled bilinearly to the input size. The loss is the per-pixel cross-entropy over labelled
pixels (VOC's 255 "void" borders count for nothing).

Training uses random crops of randomly rescaled images (``crop_size``, scales ``min_scale``..``max_scale``) and
horizontal flips; the image is padded with the trunk's mean colour (zero after its mean subtraction) and the mask
with 255 where a crop runs off the image. The FCN protocol behind the paper's numbers trained on whole images, one
at a time; crops make batches (at scale 1 a 320x320 crop holds about half of a typical 500x375 VOC image).
Evaluation is on whole images at full resolution, one at a time (padded to a multiple of 16 and cropped back), so
the result does not depend on batching or on the number of processes; each process scores its share of the
split, and the confusion matrices are summed over processes. ``--freeze-trunk`` trains the head only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..models import Trunk
from ..models.discriminator import RGB_MEAN
from . import devkit
from .devkit import IGNORE_INDEX, SEGMENTATION_CLASSES, VOCError
from .engine import TransferOptions, TransferRun, VOCImageSet, collate_stacked, gather, load_trunk
from .metrics import SegmentationConfusion

log = logging.getLogger("spotart")

TASK = "voc-seg"
STRIDE = 16  # conv5's stride: evaluation pads images to a multiple of it
MEAN_COLOUR = tuple(int(round(v)) for v in RGB_MEAN)  # padding that the trunk's mean subtraction maps to ~0


@dataclass
class SegmentationOptions(TransferOptions):
    year: str = "2012"
    train_split: str = "train"
    test_split: str = "val"
    crop_size: int = 320  # training crops (a multiple of 16); evaluation uses whole images
    min_scale: float = 0.5  # random rescale of each training image before cropping
    max_scale: float = 2.0
    head_channels: int = 512  # width of the new fc6 (3x3 conv on conv5)
    # VOC2012 seg train has 1464 images: 80 epochs of 16 crops (91 steps each, 7.3k steps) are 117k crops of
    # 320x320, about the pixels of FCN's 100k iterations of one whole image.
    epochs: int = 80
    batch_size: int = 16  # per process
    lr: float = 0.01  # SGD, momentum 0.9, loss averaged over labelled pixels; the trunk gets trunk_lr_factor x lr
    trunk_lr_factor: float = 0.1  # DeepLab's convention: the pretrained layers learn 10x slower than the new head
    max_train: int | None = None  # the first N images of the split (a quick check); None: all
    max_test: int | None = None

    def check(self) -> None:
        super().check()
        problems = []
        if self.crop_size < 32 or self.crop_size % STRIDE:
            problems.append(f"crop size must be a multiple of {STRIDE} and at least 32, not {self.crop_size}")
        if not 0 < self.min_scale <= self.max_scale or not math.isfinite(self.max_scale):
            problems.append(f"scales must satisfy 0 < min_scale <= max_scale, not {self.min_scale}..{self.max_scale}")
        if self.head_channels < 1:
            problems.append("head channels must be positive")
        if any(limit is not None and limit < 1 for limit in (self.max_train, self.max_test)):
            problems.append("max train / max test must be positive (or None for the whole split)")
        if problems:
            raise ValueError("; ".join(problems))


# ------------------------------------------------------------------------------------------------- data
def _pad(image: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (H, W, 3) uint8 image and (H, W) mask at the bottom and right to at least height x width: the image with
    the mean colour, the mask with IGNORE_INDEX."""
    h, w = mask.shape
    if h >= height and w >= width:
        return image, mask
    out_h, out_w = max(h, height), max(w, width)
    padded_image = np.empty((out_h, out_w, 3), dtype=np.uint8)
    padded_image[:] = MEAN_COLOUR
    padded_image[:h, :w] = image
    padded_mask = np.full((out_h, out_w), IGNORE_INDEX, dtype=np.uint8)
    padded_mask[:h, :w] = mask
    return padded_image, padded_mask


def _to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1] (the trunk's range); mask -> int64 (H, W)."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()  # np.array: a writable, contiguous copy
    return pixels.div(127.5).sub(1.0), torch.from_numpy(np.array(mask)).long()


class TrainTransform:
    """Joint augmentation of an image and its mask: random rescale, pad, random crop, random horizontal flip.

    The image is resized bilinearly, the mask by nearest neighbour (class indices must not blend). Random numbers
    come from torch's generator (``generator``, or the global one, which DataLoader seeds per worker).
    """

    def __init__(self, crop_size: int, min_scale: float = 0.5, max_scale: float = 2.0, flip: bool = True) -> None:
        self.crop_size, self.min_scale, self.max_scale, self.flip = crop_size, min_scale, max_scale, flip

    def __call__(self, image: Image.Image, mask: np.ndarray, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.min_scale + (self.max_scale - self.min_scale) * float(torch.rand((), generator=generator))
        if scale != 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.BILINEAR)
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
        pixels, mask = _pad(np.asarray(image), mask, self.crop_size, self.crop_size)
        h, w = mask.shape
        top = int(torch.randint(0, h - self.crop_size + 1, (), generator=generator))
        left = int(torch.randint(0, w - self.crop_size + 1, (), generator=generator))
        pixels = pixels[top:top + self.crop_size, left:left + self.crop_size]
        mask = mask[top:top + self.crop_size, left:left + self.crop_size]
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            pixels, mask = pixels[:, ::-1], mask[:, ::-1]
        return _to_tensors(pixels, mask)


class TestTransform:
    """The whole image padded (mean colour) at the bottom and right to a multiple of ``STRIDE``; the mask as it is."""

    def __call__(self, image: Image.Image, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = mask.shape
        pixels, _ = _pad(np.asarray(image), mask, -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE)
        return _to_tensors(pixels, mask)


class VOCSegmentationSet(VOCImageSet):
    """(image, mask, index) triples; an unreadable image comes back as None and is dropped by ``collate``."""

    def __init__(self, folder: Path, ids: list[str], transform: Any) -> None:
        super().__init__(folder, ids)
        self.transform = transform

    def item(self, image: Any, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        mask = devkit.load_mask(self.folder, self.ids[index])
        if mask.shape != (image.height, image.width):
            raise VOCError(f"mask of {self.ids[index]} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                           f"{image.width}x{image.height} ({self.folder / 'SegmentationClass'})")
        image, mask = self.transform(image, mask)
        return image, mask, index


collate = collate_stacked  # (images, masks, indices): same-size crops, or the one image of an evaluation batch


# ------------------------------------------------------------------------------------------------ model
class PixelLinear(nn.Linear):
    """A 1x1 convolution computed as ``nn.Linear`` over the channels of (B, C, H, W).

    Same maths as ``nn.Conv2d(C, K, 1)``; written as a linear layer because 1x1 ``Conv2d`` under bf16 autocast
    corrupts the heap on AMX CPUs in torch 2.14 (README, "Speed and precision").
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class FCNSegmenter(nn.Module):
    """conv1..conv5 of the trunk and an FCN head; returns (B, 21, H, W) float32 logits at the input size.

    - ``fc6``: conv5 (stride 16, 256 ch) -> 3x3 conv to ``head_channels`` -> ReLU -> dropout 0.5;
    - ``score16``: 1x1 to the classes at stride 16;
    - ``skip8``: conv2 (stride 8, 256 ch) -> GroupNorm -> 1x1 to the classes, added to ``score16`` upsampled 2x.
      GroupNorm (per image, so batch size does not matter) because conv2's scale depends on the trunk (a
      random init's is ~10x conv5's, which is normalised by its BatchNorm); FCN scaled its skips by a constant.
      Its scores start at zero, as FCN's skip layers did, so training starts from the stride-16 prediction;
    - bilinear upsampling of the sum to the input size.
    """

    def __init__(self, trunk: Trunk, head_channels: int = 512, classes: int = len(SEGMENTATION_CLASSES)) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc6 = nn.Sequential(nn.Conv2d(256, head_channels, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout(0.5))
        self.score16 = PixelLinear(head_channels, classes)
        self.skip8 = nn.Sequential(nn.GroupNorm(32, 256), PixelLinear(256, classes))
        nn.init.zeros_(self.skip8[1].weight)
        nn.init.zeros_(self.skip8[1].bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.trunk.forward_features(images)
        scores = self.score16(self.fc6(features["conv5"]))
        skip = self.skip8(features["conv2"])
        scores = F.interpolate(scores.float(), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        scores = scores + skip.float()
        return F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels of the batch (in float32); 255 pixels count for nothing,
    and a batch without a labelled pixel gives 0."""
    total = F.cross_entropy(logits.float(), target.long(), ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp(min=1)


# ----------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def confusion_matrix(model: nn.Module, loader: torch.utils.data.DataLoader, run: TransferRun
                     ) -> tuple[SegmentationConfusion, int]:
    """Every process's pixel confusion over its images, summed over the processes; and the number of images."""
    model.eval()
    confusion = SegmentationConfusion(len(SEGMENTATION_CLASSES), IGNORE_INDEX)
    images = 0
    for batch in loader:
        if batch is None:
            continue
        pixels, masks, _ = batch
        with run.runtime.autocast():
            logits = model(pixels.to(run.device, non_blocking=True))
        h, w = masks.shape[-2:]
        confusion.update(logits[..., :h, :w].argmax(1).cpu(), masks)
        images += len(masks)
    total = SegmentationConfusion(len(SEGMENTATION_CLASSES), IGNORE_INDEX)
    count = 0
    for part, n in gather([(confusion, images)]):
        total.merge(part)
        count += n
    return total, count


def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, run: TransferRun) -> dict[str, Any]:
    """Mean IoU (percent) over the classes that occur in the truth or the predictions (all 21 on VOC val)."""
    confusion, images = confusion_matrix(model, loader, run)
    if images == 0:
        raise VOCError("no test image could be read: see the warnings above")
    iou = confusion.iou()
    evaluated = [name for name, value in zip(SEGMENTATION_CLASSES, iou) if not np.isnan(value)]
    return {
        "miou": 100.0 * confusion.mean_iou(),
        "per_class": {name: 100.0 * float(value) for name, value in zip(SEGMENTATION_CLASSES, iou)
                      if not np.isnan(value)},
        "classes_evaluated": evaluated,
        "pixel_accuracy": 100.0 * confusion.pixel_accuracy(),
        "test_images": images,
    }


# ------------------------------------------------------------------------------------------------ the run
def _split(folder: Path, split: str, limit: int | None) -> list[str]:
    ids = devkit.read_split(folder, split, segmentation=True)
    ids = ids[:limit] if limit else ids
    missing = [image_id for image_id in ids if not (folder / "SegmentationClass" / f"{image_id}.png").is_file()]
    if missing:
        raise VOCError(f"{len(missing)} images of the {split} split have no mask in {folder / 'SegmentationClass'} "
                       f"(first: {missing[0]}.png)")
    return ids


def run_voc_segmentation(out: str | Path, options: SegmentationOptions, resume: bool = False) -> dict[str, Any]:
    """Fine-tune (or train the head on the frozen trunk), evaluate on the test split, write ``OUT/voc_seg.json``."""
    started = time.perf_counter()
    run = TransferRun(TASK, out, options, resume)
    folder = devkit.open_year(options.voc_root, options.year, (options.train_split, options.test_split),
                              options.download, segmentation=True)
    train_ids = _split(folder, options.train_split, options.max_train)
    test_ids = _split(folder, options.test_split, options.max_test)
    trunk, origin = load_trunk(options.checkpoint, options.init, options.seed)
    trunk.requires_grad_(not options.freeze_trunk)
    model = FCNSegmenter(trunk, options.head_channels)
    log.info("%s: %d training images (%s), %d test images (%s), trunk from %s%s, %s", TASK, len(train_ids),
             options.train_split, len(test_ids), options.test_split, origin,
             " (frozen)" if options.freeze_trunk else "", run.runtime.describe())
    train_set = VOCSegmentationSet(folder, train_ids,
                                   TrainTransform(options.crop_size, options.min_scale, options.max_scale))
    test_set = VOCSegmentationSet(folder, test_ids, TestTransform())
    train_loader = run.loader(train_set, options.batch_size, shuffle=True, collate=collate)
    test_loader = run.loader(test_set, 1, shuffle=False, collate=collate)  # whole images of different sizes

    def step(network: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, masks, _ = batch
        logits = network(images.to(run.device, non_blocking=True))
        return {"loss": segmentation_loss(logits, masks.to(run.device, non_blocking=True))}

    def interim(epoch: int) -> dict[str, float]:
        result = evaluate(model, test_loader, run)
        return {"test_miou": result["miou"], "test_pixel_accuracy": result["pixel_accuracy"]}

    run.fit(model, trunk, train_loader, step, interim, eval_every=max(1, options.epochs // 4))
    result = evaluate(model, test_loader, run)
    return run.finish(result, origin, len(train_ids), started, print_table, crop_size=options.crop_size)


def print_table(result: dict[str, Any]) -> None:
    print(f"VOC{result['year']} segmentation ({result['test_split']}, {result['test_images']} images), "
          f"trunk {result['trunk']}{' frozen' if result['frozen_trunk'] else ''}")
    print(f"{'class':<14}{'IoU':>8}")
    for name, value in result["per_class"].items():
        print(f"{name:<14}{value:>8.1f}")
    print(f"{'mean IoU':<14}{result['miou']:>8.1f}  ({len(result['classes_evaluated'])} classes)")
    print(f"{'pixel acc.':<14}{result['pixel_accuracy']:>8.1f}")
