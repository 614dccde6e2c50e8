"""The fixed images the report's panels are drawn on: the same ones every time for the same run.

They come from the run's own data, spread over its sorted file list so that more than the first
class folder shows up. When that data is gone (a run copied to another machine), the photographs
bundled with scikit-image stand in, and failing those smooth random images; the page says which.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import MIN_SIDE, CenterCrop, DataError, FolderSource, ImageSource, open_source

log = logging.getLogger("spotart")


@dataclass(frozen=True)
class FixedImages:
    images: torch.Tensor  # (N, 3, S, S) in [-1, 1], the test-time centre crop
    names: list[str]  # where each image came from
    note: str | None  # why these are not the run's own images, when they are not


def spread(length: int, count: int) -> Iterator[int]:
    """Every index below ``length``, the ``count`` evenly spaced ones first (the rest stand in for bad files)."""
    step = max(1, length // max(count, 1))
    for offset in range(step):
        yield from range(offset, length, step)


def take_images(source: ImageSource, image_size: int, count: int) -> tuple[list[torch.Tensor], list[str]]:
    crop = CenterCrop(image_size)
    images, names = [], []
    for index in spread(len(source), count):
        if len(images) == count:
            break
        try:
            picture, _ = source.load(index)
        except Exception as err:  # noqa: BLE001 - an unreadable file is skipped, as in training
            log.debug("report: skipped %s (%s)", source.describe(index), err)
            continue
        if min(picture.size) >= MIN_SIDE:
            images.append(crop(picture))
            names.append(source.describe(index))
    return images, names


def random_images(image_size: int, count: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour fields (4x4 random colours, bilinearly enlarged): the last resort when no photo exists."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 3, 4, 4, generator=generator)
    return F.interpolate(corners, size=(image_size, image_size), mode="bilinear", align_corners=False) * 2 - 1


def fixed_images(config: dict, image_size: int, count: int, scratch: Path) -> FixedImages:
    """``count`` images for the panels; ``scratch`` is a folder the fallback photographs may be written to."""
    data = str(config.get("data", ""))
    try:
        # the test split of a torchvision dataset: the same images, without loading 100k unlabelled ones
        source = open_source(data, str(config.get("data_root", "~/.cache/spotart/datasets")), split="test")
        images, names = take_images(source, image_size, count)
        if images:
            return FixedImages(torch.stack(images), names, None)
        reason = "none of its images could be read"
    except DataError as err:
        reason = str(err)
    try:
        from ..data.bundled_photos import write_demo_images

        write_demo_images(scratch)
        images, names = take_images(FolderSource(scratch), image_size, count)
        if images:
            note = f"The run's data ({data or 'not recorded'}) is not available here ({reason}): the panels show " \
                   "photographs bundled with scikit-image instead."
            return FixedImages(torch.stack(images), [Path(n).name for n in names], note)
    except (ImportError, OSError, DataError) as err:
        reason += f"; scikit-image photographs unavailable ({type(err).__name__})"
    note = f"The run's data ({data or 'not recorded'}) is not available here ({reason}): the panels show random " \
           "smooth colour images instead, which say little about the networks."
    return FixedImages(random_images(image_size, count), [f"random {i}" for i in range(count)], note)
