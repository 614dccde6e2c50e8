"""Reading PASCAL VOC from the standard VOCdevkit layout, and downloading it when asked.

    ROOT/VOCdevkit/VOC2007/JPEGImages/000005.jpg
                          /Annotations/000005.xml                (objects: name, difficult, bndbox)
                          /ImageSets/Main/trainval.txt, test.txt (image ids, one per line)
                          /ImageSets/Segmentation/train.txt, val.txt
                          /SegmentationClass/000032.png          (palette indices: 0 background, 1..20, 255 void)

``ROOT`` may also be the ``VOCdevkit`` folder or the ``VOC<year>`` folder itself. Boxes are kept in the devkit's
convention (1-based, inclusive corners) in ``Annotation``; ``to_torchvision_boxes`` converts them to the 0-based,
end-exclusive pixel coordinates that torchvision's detection models use, and ``to_devkit_boxes`` converts back, so
that detections are scored exactly as the devkit scores them.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .metrics import VOC_CLASSES

log = logging.getLogger("spotart")

SEGMENTATION_CLASSES = ("background", *VOC_CLASSES)  # the 21 classes of VOCSegmentation, index = palette index
IGNORE_INDEX = 255  # object borders and "void" regions in SegmentationClass masks
DEFAULT_VOC_ROOT = "~/.cache/spotart/voc"
CLASS_INDEX = {name: index for index, name in enumerate(VOC_CLASSES)}


class VOCError(ValueError):
    """A VOC folder or file that cannot be used: the message says what is wrong and where."""


@dataclass
class Annotation:
    image_id: str
    width: int
    height: int
    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2: devkit pixels (1-based, inclusive)
    labels: np.ndarray  # (K,) int64 index into VOC_CLASSES
    difficult: np.ndarray  # (K,) bool


def year_folder(root: str | Path, year: str) -> Path:
    """The ``VOC<year>`` folder under ``root`` (which may be it, its ``VOCdevkit`` parent or the one above)."""
    root = Path(root).expanduser()
    for candidate in (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise VOCError(
        f"no PASCAL VOC {year} found under {root}: expected {root}/VOCdevkit/VOC{year}/JPEGImages (the standard "
        "VOCdevkit layout). Pass --download to fetch it with torchvision, or --voc-root where it already lies."
    )


def download(root: str | Path, year: str, image_set: str, segmentation: bool = False) -> Path:
    """Fetch and unpack one VOC split with torchvision (only when the user asks for it); return its year folder."""
    from torchvision import datasets

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading PASCAL VOC%s %s to %s (torchvision)", year, image_set, root)
    dataset_type = datasets.VOCSegmentation if segmentation else datasets.VOCDetection
    dataset_type(str(root), year=year, image_set=image_set, download=True)
    return year_folder(root, year)


def open_year(root: str | Path, year: str, image_sets: tuple[str, ...], fetch: bool, segmentation: bool = False
              ) -> Path:
    """The year folder, downloading the given image sets first when ``fetch`` is set and they are missing."""
    try:
        folder = year_folder(root, year)
        missing = [name for name in image_sets if not split_file(folder, name, segmentation).is_file()]
    except VOCError:
        if not fetch:
            raise
        folder, missing = None, list(image_sets)
    for name in missing if fetch else []:
        # one archive may hold several splits (VOC2012's trainval tar has train and val): fetch only what is
        # still missing after the previous download
        if folder is None or not split_file(folder, name, segmentation).is_file():
            folder = download(root, year, name, segmentation)
    assert folder is not None
    return folder


def split_file(folder: Path, split: str, segmentation: bool = False) -> Path:
    return folder / "ImageSets" / ("Segmentation" if segmentation else "Main") / f"{split}.txt"


def read_split(folder: Path, split: str, segmentation: bool = False) -> list[str]:
    """Image ids of ``ImageSets/Main/<split>.txt`` (or ``Segmentation/``), in file order."""
    path = split_file(folder, split, segmentation)
    if not path.is_file():
        # the split lists, not the per-class ones (aeroplane_trainval.txt, ...)
        available = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise VOCError(f"split file {path} not found (available: {', '.join(available) or 'none'})")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise VOCError(f"split file {path} lists no images")
    return ids


def parse_annotation(path: Path) -> Annotation:
    """One ``Annotations/<id>.xml`` file; unknown class names and malformed boxes are errors naming the file."""
    try:
        tree = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise VOCError(f"annotation {path} cannot be read: {err}") from None
    size = tree.find("size")
    width = int(float(size.findtext("width", "0"))) if size is not None else 0
    height = int(float(size.findtext("height", "0"))) if size is not None else 0
    boxes, labels, difficult = [], [], []
    for obj in tree.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASS_INDEX:
            raise VOCError(f"annotation {path}: unknown class {name!r} (VOC classes: {', '.join(VOC_CLASSES)})")
        box = obj.find("bndbox")
        try:
            coords = [float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            raise VOCError(f"annotation {path}: object {name!r} has no valid bndbox") from None
        if coords[2] < coords[0] or coords[3] < coords[1]:
            raise VOCError(f"annotation {path}: object {name!r} has an inverted box {coords}")
        boxes.append(coords)
        labels.append(CLASS_INDEX[name])
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    return Annotation(
        image_id=path.stem, width=width, height=height,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult, dtype=bool),
    )


def read_annotations(folder: Path, ids: list[str]) -> list[Annotation]:
    missing = [image_id for image_id in ids if not (folder / "Annotations" / f"{image_id}.xml").is_file()]
    if missing:
        raise VOCError(f"{len(missing)} images of the split have no annotation in {folder / 'Annotations'} "
                       f"(first: {missing[0]}.xml)")
    return [parse_annotation(folder / "Annotations" / f"{image_id}.xml") for image_id in ids]


def classification_labels(annotations: list[Annotation]) -> np.ndarray:
    """(N, 20) in the devkit's classification convention: 1 present, 0 only difficult instances, -1 absent."""
    labels = -np.ones((len(annotations), len(VOC_CLASSES)), dtype=np.int8)
    for row, ann in enumerate(annotations):
        for label, hard in zip(ann.labels, ann.difficult):
            if not hard:
                labels[row, label] = 1
            elif labels[row, label] == -1:
                labels[row, label] = 0
    return labels


def to_torchvision_boxes(boxes: np.ndarray) -> np.ndarray:
    """Devkit (1-based, inclusive) -> torchvision (0-based, exclusive end): x1 - 1, y1 - 1, x2, y2."""
    out = boxes.astype(np.float32).copy()
    out[:, :2] -= 1.0
    return out


def to_devkit_boxes(boxes: np.ndarray) -> np.ndarray:
    """The inverse of ``to_torchvision_boxes``."""
    out = boxes.astype(np.float32).copy()
    out[:, :2] += 1.0
    return out


def load_image(folder: Path, image_id: str) -> Image.Image | None:
    """``JPEGImages/<id>.jpg`` as RGB, or None (with a warning) when it is missing or cannot be decoded."""
    path = folder / "JPEGImages" / f"{image_id}.jpg"
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as err:
        log.warning("skipping %s: %s: %s", path, type(err).__name__, err)
        return None


def load_mask(folder: Path, image_id: str) -> np.ndarray:
    """``SegmentationClass/<id>.png`` as (H, W) uint8 class indices (0..20, 255 void)."""
    path = folder / "SegmentationClass" / f"{image_id}.png"
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise VOCError(f"mask {path} has mode {img.mode}: expected a palette (P) or greyscale (L) PNG of "
                               "class indices")
            mask = np.array(img, dtype=np.uint8)
    except OSError as err:
        raise VOCError(f"mask {path} cannot be read: {err}") from None
    bad = np.setdiff1d(np.unique(mask), np.r_[np.arange(len(SEGMENTATION_CLASSES)), IGNORE_INDEX])
    if bad.size:
        raise VOCError(f"mask {path} holds values {bad.tolist()[:5]} outside 0..20 and 255")
    return mask
