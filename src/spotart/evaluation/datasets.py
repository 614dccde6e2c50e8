"""Labelled image sources for evaluation, built on ``spotart.data`` (no loader of our own).

Evaluation needs labels, so a folder must hold class folders (``DIR/<class>/<image>``) and the two splits of an
experiment must name the same classes; both are checked up front with a one-line error. Tar shards from
``spotart pack`` (a shard folder or ``DIR/train-{000000..000009}.tar``) must hold ``.cls`` labels. ``stl10`` /
``cifar10`` work too (``stl10:train``, ``stl10:test``), read by torchvision from ``data_root``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ..data import CenterCrop, FolderSource, ImageDataset, ImageSource, TorchvisionSource, collate_skipping, open_source
from ..data.shards import ShardSource
from .errors import EvaluationError

DEFAULT_DATA_ROOT = "~/.cache/spotart/datasets"


@dataclass
class LabelledSource:
    source: ImageSource
    classes: list[str]
    name: str  # what the user passed, for messages and cache keys

    def __len__(self) -> int:
        return len(self.source)


def open_labelled(data: str, default_split: str, role: str, data_root: str = DEFAULT_DATA_ROOT) -> LabelledSource:
    """Open ``data`` and make sure it has labels; ``default_split`` applies to ``stl10`` / ``cifar10`` without one."""
    source = open_source(data, data_root=data_root, split=default_split)
    if isinstance(source, FolderSource):
        if not source.classes:
            raise EvaluationError(
                f"the {role} folder {source.root} has no class folders: evaluation needs labels, laid out as "
                f"{source.root}/<class>/<image>"
            )
        classes = list(source.classes)
        name = str(source.root.resolve())
    elif isinstance(source, ShardSource):
        if not source.classes:
            raise EvaluationError(
                f"the {role} shards {source.name} have no .cls labels: evaluation needs labels (pack a folder of "
                "class folders: DIR/<class>/<image>)"
            )
        classes = list(source.classes)
        name = source.name
    elif isinstance(source, TorchvisionSource):
        classes = [str(c) for c in source.dataset.classes]
        labels = getattr(source.dataset, "labels", None)
        if labels is not None and len(labels) and int(min(labels)) < 0:
            raise EvaluationError(f"{data} ({role}) is unlabelled: use stl10:train or stl10:test")
        name = f"{data}@{data_root}"
    else:  # pragma: no cover - open_source returns only the three kinds above
        raise EvaluationError(f"unsupported data source for {role}: {data}")
    return LabelledSource(source, classes, name)


def check_same_classes(train: LabelledSource, val: LabelledSource) -> None:
    """A classifier trained on one split is meaningless on another that names its classes differently."""
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise EvaluationError(
            f"the training and evaluation data have different classes ({len(train.classes)} vs "
            f"{len(val.classes)}; only in training: {only_train[:5]}, only in evaluation: {only_val[:5]})"
        )


class SubsetSource:
    """The images of ``source`` at ``indices``, in that order (a subsample, or an STL-10 fold)."""

    def __init__(self, source: ImageSource, indices: list[int]) -> None:
        bad = [i for i in indices if not 0 <= i < len(source)]
        if bad:
            raise EvaluationError(f"index {bad[0]} is outside the {len(source)} images of the data")
        self.source, self.indices = source, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> tuple[Image.Image, int]:
        return self.source.load(self.indices[index])

    def describe(self, index: int) -> str:
        return self.source.describe(self.indices[index])


def subsample(size: int, limit: int | None, seed: int) -> list[int] | None:
    """A fixed random subset of ``limit`` indices (sorted), or None for all: the same subset on every run."""
    if limit is None or limit <= 0 or limit >= size:
        return None
    gen = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(size, generator=gen)[:limit].tolist())


def evaluation_loader(source: ImageSource, image_size: int, batch_size: int, workers: int) -> DataLoader:
    """Test-time views (centre crop 85%, as the official code), in order, unreadable files skipped."""
    return DataLoader(
        ImageDataset(source, CenterCrop(image_size)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_skipping,
        # its own generator: iterating must not draw from the global RNG of a training run it is called from
        generator=torch.Generator(),
    )


def decode_images(source: ImageSource, image_size: int, batch_size: int = 256, workers: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every readable image as uint8 (N, 3, s, s) plus labels: decoded once, reused on every evaluation."""
    images, labels = [], []
    for batch in evaluation_loader(source, image_size, batch_size, workers):
        if batch["images"].numel():
            images.append(batch["images"].add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8))
            labels.append(batch["labels"])
    if not images:
        raise EvaluationError("none of the evaluation images could be read")
    return torch.cat(images), torch.cat(labels)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images from ``decode_images`` back to [-1, 1] floats."""
    return images.float().div(127.5).sub(1.0)
