"""The photographs that ship inside scikit-image (no download), written as a flat folder of images: the demo's
data, the report's stand-in when a run's own data is gone, and the benchmark's default images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("spotart")

# Colour and greyscale photographs bundled inside scikit-image (no download needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera",
          "coins", "moon", "clock", "brick", "grass", "gravel", "stereo_motorcycle", "colorwheel")


def write_demo_images(folder: Path, short_side: int = 128, names: tuple[str, ...] = PHOTOS) -> int:
    """Each photograph, resized to a ``short_side`` shorter side, plus its four overlapping quadrants."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in names:
        try:
            array = getattr(skimage.data, name)()
        except Exception as err:  # noqa: BLE001 - a missing optional photo only shrinks the demo set
            log.warning("scikit-image photo %s unavailable (%s): skipped", name, type(err).__name__)
            continue
        if isinstance(array, tuple):  # stereo pairs
            array = array[0]
        img = Image.fromarray(np.asarray(array)).convert("RGB")
        scale = short_side / min(img.size)
        img = img.resize((max(short_side, round(img.width * scale)), max(short_side, round(img.height * scale))),
                         Image.LANCZOS)
        w, h = img.size
        views = [img] + [img.crop((x, y, x + w * 2 // 3, y + h * 2 // 3)) for x in (0, w // 3) for y in (0, h // 3)]
        for i, view in enumerate(views):
            view.save(folder / f"{name}_{i}.png")
            count += 1
    return count



def write_benchmark_images(folder: Path, count: int, side: int, seed: int = 0) -> int:
    """``count`` JPEGs of ``side`` x ``side`` pixels, random square crops of the bundled photographs (quality 90, as
    a folder of real photographs would hold them): enough images for the data-pipeline timing of ``spotart bench``
    to time full batches when no data set is at hand."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = []
    for name in PHOTOS:
        try:
            array = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a missing optional photo only narrows the choice
            continue
        sources.append(Image.fromarray(np.asarray(array[0] if isinstance(array, tuple) else array)).convert("RGB"))
    if not sources:
        raise RuntimeError("no scikit-image photograph could be read")
    for index in range(count):
        photo = sources[index % len(sources)]
        crop = int(rng.integers(min(photo.size) // 3, min(photo.size) + 1))
        left = int(rng.integers(0, photo.width - crop + 1))
        top = int(rng.integers(0, photo.height - crop + 1))
        view = photo.crop((left, top, left + crop, top + crop)).resize((side, side), Image.BILINEAR)
        view.save(folder / f"bench_{index:05d}.jpg", quality=90)
    return count
