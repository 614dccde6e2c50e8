"""A small generated dataset in the exact VOCdevkit layout: the VOC pipelines' tests and ``spotart voc-toy``.

Each image is a textured background (smoothed colour noise plus random stripes) with one to three drawn shapes.
Each shape kind stands for one VOC class (by default a disc is an "aeroplane", a square a "bicycle", a triangle a
"bird") and has its own hue, jittered, so a network can learn the task in a few hundred steps on a CPU while the
backgrounds keep it from being trivial. Written like the real thing:

- ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (1-based inclusive boxes; small shapes marked ``difficult``);
- ``SegmentationClass/<id>.png``: palette PNG of class indices with a 255 ("void") border around every object,
  as VOC's masks have;
- ``ImageSets/Main/<split>.txt``, ``<class>_<split>.txt`` (1 / -1 / 0 for difficult-only), and
  ``ImageSets/Segmentation/<split>.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .devkit import CLASS_INDEX, IGNORE_INDEX
from .metrics import VOC_CLASSES

SHAPES = ("disc", "square", "triangle", "diamond")
DEFAULT_CLASSES = ("aeroplane", "bicycle", "bird")
HUES = ((220, 60, 50), (50, 170, 70), (60, 90, 220), (230, 200, 40))
DIFFICULT_SIDE = 14  # shapes smaller than this (in pixels) are annotated difficult, like VOC's tiny objects


@dataclass
class ToyObject:
    label: int  # index into VOC_CLASSES
    shape: str
    box: tuple[int, int, int, int]  # devkit: 1-based inclusive x1, y1, x2, y2
    difficult: bool


def voc_palette() -> list[int]:
    """The VOC colour map (bit-interleaved RGB per index) that SegmentationClass PNGs use."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    coarse = rng.integers(40, 216, size=(max(2, height // 16), max(2, width // 16), 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):  # stripes: edges that are not objects
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
        shade = tuple(int(v) for v in rng.integers(30, 230, size=3))
        draw.line((x0, y0, x1, y1), fill=shade, width=int(rng.integers(1, 4)))
    noise = rng.normal(0, 12, size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def _polygon(shape: str, x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _draw(image_draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill, outline=None,
          width: int = 0) -> None:
    x0, y0, x1, y1 = box
    if shape == "disc":
        image_draw.ellipse(box, fill=fill, outline=outline, width=width)
    else:
        image_draw.polygon(_polygon(shape, x0, y0, x1, y1), fill=fill, outline=outline, width=width)


def draw_toy_image(rng: np.random.Generator, classes: tuple[str, ...], width: int, height: int
                   ) -> tuple[Image.Image, np.ndarray, list[ToyObject]]:
    """One image, its class-index mask (0 background, 255 borders) and its objects."""
    image = _background(rng, width, height)
    mask = Image.new("L", (width, height), 0)
    draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    objects: list[ToyObject] = []
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, len(classes)))
        side = int(rng.integers(min(width, height) // 8, min(width, height) // 2))
        x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        box = (x0, y0, x0 + side - 1, y0 + side - 1)  # 0-based inclusive pixels
        hue = np.clip(np.array(HUES[kind % len(HUES)]) + rng.integers(-25, 26, size=3), 0, 255)
        _draw(draw, SHAPES[kind % len(SHAPES)], box, fill=tuple(int(v) for v in hue))
        label = CLASS_INDEX[classes[kind]]
        _draw(mask_draw, SHAPES[kind % len(SHAPES)], box, fill=label + 1, outline=IGNORE_INDEX, width=2)
        objects.append(ToyObject(label, SHAPES[kind % len(SHAPES)], (box[0] + 1, box[1] + 1, box[2] + 1, box[3] + 1),
                                 side < DIFFICULT_SIDE))
    image = image.filter(ImageFilter.GaussianBlur(0.6))  # soften the drawn edges a little, as a camera would
    return image, np.asarray(mask, dtype=np.uint8), objects


def _annotation_xml(image_id: str, width: int, height: int, objects: list[ToyObject]) -> str:
    parts = [f"<annotation><folder>VOC</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
             "<segmented>1</segmented>"]
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        parts.append(f"<object><name>{VOC_CLASSES[obj.label]}</name><pose>Unspecified</pose>"
                     f"<truncated>0</truncated><difficult>{int(obj.difficult)}</difficult>"
                     f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def write_toy_voc(root: str | Path, year: str = "2007", splits: dict[str, int] | None = None,
                  classes: tuple[str, ...] = DEFAULT_CLASSES, size: tuple[int, int] = (96, 128), seed: int = 0
                  ) -> Path:
    """Write ``root/VOCdevkit/VOC<year>`` with ``splits`` (name -> number of images); return the year folder.

    Image sides are drawn from ``size`` (min, max), so images are not square, as VOC's are not. Every split is
    listed in both ``ImageSets/Main`` and ``ImageSets/Segmentation``; the union of ``train`` and ``val`` is also
    written as ``trainval`` when both are asked for.
    """
    splits = splits or {"trainval": 64, "test": 32}
    unknown = [name for name in classes if name not in CLASS_INDEX]
    if unknown or not 1 <= len(classes) <= len(SHAPES):
        raise ValueError(f"classes must be 1 to {len(SHAPES)} VOC class names, got {classes}")
    folder = Path(root).expanduser() / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = voc_palette()
    ids_by_split: dict[str, list[str]] = {}
    presence: dict[str, np.ndarray] = {}  # image id -> per-class 1 / 0 / -1
    counter = 0
    for split, count in splits.items():
        ids_by_split[split] = []
        for _ in range(count):
            image_id = f"{counter:06d}"
            counter += 1
            width, height = (int(v) for v in rng.integers(size[0], size[1] + 1, size=2))
            image, mask, objects = draw_toy_image(rng, classes, width, height)
            image.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=92)
            mask_png = Image.fromarray(mask)  # mode L holding class indices ...
            mask_png.putpalette(palette)  # ... becomes a palette PNG with the same indices, as VOC's masks are
            mask_png.save(folder / "SegmentationClass" / f"{image_id}.png")
            (folder / "Annotations" / f"{image_id}.xml").write_text(_annotation_xml(image_id, width, height, objects))
            row = -np.ones(len(VOC_CLASSES), dtype=np.int8)
            for obj in objects:
                row[obj.label] = 1 if not obj.difficult else max(row[obj.label], 0)
            presence[image_id] = row
            ids_by_split[split].append(image_id)
    if "train" in ids_by_split and "val" in ids_by_split and "trainval" not in ids_by_split:
        ids_by_split["trainval"] = ids_by_split["train"] + ids_by_split["val"]
    for split, ids in ids_by_split.items():
        listing = "".join(f"{image_id}\n" for image_id in ids)
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text(listing)
        (folder / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(listing)
        for index, name in enumerate(VOC_CLASSES):
            (folder / "ImageSets" / "Main" / f"{name}_{split}.txt").write_text(
                "".join(f"{image_id} {int(presence[image_id][index]):2d}\n" for image_id in ids))
    return folder
