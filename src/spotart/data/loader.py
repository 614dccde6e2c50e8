"""The training stream: a dataset over any image source that skips unreadable files instead of crashing, the
sampler that seeds every image's augmentation from (seed, epoch, index) and resumes mid-epoch, and the loader
that joins them (``training_loader`` for a stage config)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import Augment
from .augment_device import Canvas, canvas_side
from .errors import DataError
from .images import MIN_SIDE, ImageSource
from .sources import open_source


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
        augment = Canvas(canvas_side(source, cfg.image_size))
    sampler = SeededSampler(len(source), cfg.batch_size, cfg.seed, rank, world_size)
    loader = make_loader(ImageDataset(source, augment), sampler, cfg.batch_size, cfg.num_workers, pin_memory)
    return loader, sampler, source
