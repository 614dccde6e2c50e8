"""Image sources, the paper's augmentation, and a loader that skips unreadable files instead of crashing.

Sources: any folder of images (class folders give labels, a flat folder gives none), tar shards written by
``spotart pack`` or any WebDataset writer (``spotart.shards``), STL-10 through torchvision in its own on-disk
format, CIFAR-10 through torchvision or as class folders.

Augmentation is a pure function of (seed, epoch, index): the sampler hands every index its own seed, so
the images a run sees do not depend on the number of workers and are the same after ``--resume``.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageFile
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger("spotart.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error we count, not a half-grey image
MIN_SIDE = 8  # images smaller than this are skipped: they cannot be cropped meaningfully


class DataError(ValueError):
    """A data path or dataset that cannot be used: the message says what to do."""


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int) -> tuple[Image.Image, int]: ...

    def describe(self, index: int) -> str: ...


class FolderSource:
    """Every image file below ``root``. Labels come from first-level class folders, or -1 when flat."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise DataError(f"data path does not exist: {self.root}")
        if not self.root.is_dir():
            raise DataError(f"data path is not a folder: {self.root}")
        files = sorted(
            Path(dirpath) / name
            for dirpath, _, names in os.walk(self.root, followlinks=True)
            for name in names
            if name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {self.root}")
        self.files = files
        top = [f.relative_to(self.root).parts for f in files]
        if all(len(parts) >= 2 for parts in top):
            self.classes = sorted({parts[0] for parts in top})
            index = {name: i for i, name in enumerate(self.classes)}
            self.labels = [index[parts[0]] for parts in top]
        else:
            self.classes = []
            self.labels = [-1] * len(files)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[Image.Image, int]:
        with Image.open(self.files[index]) as img:
            img.load()
            return to_rgb(img), self.labels[index]

    def describe(self, index: int) -> str:
        return str(self.files[index])


class TorchvisionSource:
    """STL-10 or CIFAR-10 in torchvision's own on-disk format (downloaded only when asked)."""

    def __init__(self, name: str, root: str, split: str, download: bool) -> None:
        import torchvision.datasets as tvd

        root_path = Path(root).expanduser()
        try:
            if name == "stl10":
                self.dataset = tvd.STL10(str(root_path), split=split, download=download)
            elif name == "cifar10":
                self.dataset = tvd.CIFAR10(str(root_path), train=split != "test", download=download)
            else:  # pragma: no cover - guarded by open_source
                raise DataError(f"unknown dataset {name}")
        except RuntimeError as err:
            raise DataError(
                f"{name} not found under {root_path} ({err}). Pass --set download=true to download it, "
                f"or --set data_root=DIR where it already lies."
            ) from None
        self.name = name
        if len(self.dataset) == 0:
            raise DataError(f"{name} split {split!r} under {root_path} is empty")

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> tuple[Image.Image, int]:
        img, label = self.dataset[index]
        return to_rgb(img), int(label)

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"


def to_rgb(img: Image.Image) -> Image.Image:
    """Greyscale, palette, CMYK, 16-bit and alpha images become 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit to 8-bit, keeping the range
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img


def open_source(data: str, data_root: str = "~/.cache/spotart/datasets", split: str = "unlabeled",
                download: bool = False) -> ImageSource:
    """``data`` is a folder path, a shard folder or pattern (``DIR/train-{000000..000009}.tar``), or the name
    ``stl10`` / ``cifar10`` (optionally ``stl10:SPLIT``)."""
    if not data:
        raise DataError("no data given: pass --data FOLDER (or shards, stl10 / cifar10)")
    name, _, name_split = data.partition(":")
    if name.lower() in ("stl10", "cifar10") and not Path(data).exists():
        return TorchvisionSource(name.lower(), data_root, name_split or split, download)
    from .shards import is_shard_data, open_shards  # imported here: spotart.shards builds on this module

    if is_shard_data(data):
        return open_shards(data)
    return FolderSource(data)


# --------------------------------------------------------------------------------------------- augmentation
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


class ImageDataset(Dataset):
    """Indexed by ``(index, seed)`` pairs from ``SeededSampler``; unreadable items come back as None."""

    def __init__(self, source: ImageSource, transform: Callable[[Image.Image, int], torch.Tensor]) -> None:
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[torch.Tensor, int] | tuple[None, str]:
        index, seed = item if isinstance(item, tuple) else (item, item)
        try:
            img, label = self.source.load(index)
            if min(img.size) < MIN_SIDE:
                raise ValueError(f"image is only {img.width}x{img.height} pixels")
            return self.transform(img, seed), label
        except Exception as err:  # noqa: BLE001 - any decoding failure is a skipped, counted image
            return None, f"{self.source.describe(index)}: {type(err).__name__}: {err}"


def collate_skipping(items: list[Any]) -> dict[str, Any]:
    """Stack readable images; report the unreadable ones so that the loop can log and count them."""
    good = [(img, label) for img, label in items if img is not None]
    skipped = [reason for img, reason in items if img is None]
    extents = None
    if good and isinstance(good[0][0], tuple):  # gpu_augment: (uint8 canvas, extent) pairs, augmented on the device
        extents = torch.stack([extent for (_, extent), _ in good])
        good = [(canvas, label) for (canvas, _), label in good]
    if good:
        images = torch.stack([img for img, _ in good])
        labels = torch.tensor([label for _, label in good], dtype=torch.long)
    else:
        images, labels = torch.empty(0), torch.empty(0, dtype=torch.long)
    batch = {"images": images, "labels": labels, "skipped": skipped}
    if extents is not None:
        batch["extents"] = extents
    return batch


class SeededSampler(Sampler):
    """A fresh permutation each epoch from (seed, epoch), split across ranks, able to start mid-epoch.

    Yields ``(index, augmentation_seed)``. ``start_batch`` skips the batches already consumed before a
    resume, so a resumed run sees exactly the images the uninterrupted run would have seen.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0
        # every rank takes the same number of full batches; the remainder of a permutation is dropped
        self.batches_per_epoch = size // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise DataError(
                f"the dataset has {size} images, fewer than one global batch ({batch_size} x {world_size} ranks): "
                "lower --batch-size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=gen).tolist()
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            chunk = order[b * global_batch : (b + 1) * global_batch]
            for position in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
                index = chunk[position]
                yield index, hash((self.seed, self.epoch, index)) & 0x7FFFFFFF


def make_loader(
    dataset: ImageDataset, sampler: SeededSampler, batch_size: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=pin_memory,
        # workers outlive an epoch (no start-up pause at each one); the sampler still changes every epoch,
        # since its indices are drawn in this process
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        drop_last=False,
        # its own generator: creating an iterator must not draw from the global RNG (dropout's), or a resumed
        # run would see different dropout masks from the uninterrupted one
        generator=torch.Generator().manual_seed(sampler.seed),
    )


def training_loader(cfg: Any, rank: int = 0, world_size: int = 1, pin_memory: bool = False
                    ) -> tuple[DataLoader, SeededSampler, ImageSource]:
    """The augmented, shuffled training stream of a stage config (``CommonConfig``)."""
    source = open_source(cfg.data, cfg.data_root, cfg.stl10_split, cfg.download)
    augment = Augment.from_config(cfg)
    if getattr(cfg, "gpu_augment", False):  # the workers only decode; augment_device.DeviceAugment does the rest
        from .augment_device import Canvas, canvas_side

        augment = Canvas(canvas_side(source, cfg.image_size))
    sampler = SeededSampler(len(source), cfg.batch_size, cfg.seed, rank, world_size)
    loader = make_loader(ImageDataset(source, augment), sampler, cfg.batch_size, cfg.num_workers, pin_memory)
    return loader, sampler, source
