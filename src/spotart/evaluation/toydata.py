"""A generated, linearly separable labelled image set: the tiny preset of ``spotart reproduce`` and the tests.

Class k is a textured image whose mean colour is the k-th of a few well separated colours, so any reasonable
feature keeps the classes apart and a working probe must reach close to 100%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ((200, 40, 40), (40, 180, 60), (50, 70, 210), (220, 200, 40), (170, 60, 190), (40, 190, 190))


def write_toy_split(folder: Path, per_class: int, classes: int = 3, size: int = 40, seed: int = 0) -> Path:
    """``folder/class_k/img_i.png``: per class, ``per_class`` images of colour k with random texture."""
    if not 1 <= classes <= len(COLOURS):
        raise ValueError(f"classes must be between 1 and {len(COLOURS)}")
    rng = np.random.default_rng(seed)
    for label in range(classes):
        out = folder / f"class_{label}"
        out.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            texture = rng.normal(0, 35, size=(6, 6, 3))
            coarse = np.clip(np.array(COLOURS[label]) + texture, 0, 255).astype(np.uint8)
            img = Image.fromarray(coarse).resize((size, size), Image.BILINEAR)
            img.save(out / f"img_{i:03d}.png")
    return folder


def write_toy_dataset(root: Path, train_per_class: int, val_per_class: int, classes: int = 3, size: int = 40
                      ) -> tuple[Path, Path]:
    """``root/train`` and ``root/val`` with different random textures."""
    return (write_toy_split(root / "train", train_per_class, classes, size, seed=1),
            write_toy_split(root / "val", val_per_class, classes, size, seed=2))
