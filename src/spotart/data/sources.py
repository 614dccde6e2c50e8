"""Image sources: any folder of images (class folders give labels, a flat folder gives none), STL-10 and
CIFAR-10 through torchvision in its own on-disk format, and ``open_source``, which picks the source a ``--data``
string names (a folder, tar shards from ``spotart.data.shards``, or ``stl10`` / ``cifar10``)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from .errors import DataError
from .images import IMAGE_EXTENSIONS, ImageSource, to_rgb
from .shards import is_shard_data, open_shards


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


def open_source(data: str, data_root: str = "~/.cache/spotart/datasets", split: str = "unlabeled",
                download: bool = False) -> ImageSource:
    """``data`` is a folder path, a shard folder or pattern (``DIR/train-{000000..000009}.tar``), or the name
    ``stl10`` / ``cifar10`` (optionally ``stl10:SPLIT``)."""
    if not data:
        raise DataError("no data given: pass --data FOLDER (or shards, stl10 / cifar10)")
    name, _, name_split = data.partition(":")
    if name.lower() in ("stl10", "cifar10") and not Path(data).exists():
        return TorchvisionSource(name.lower(), data_root, name_split or split, download)
    if is_shard_data(data):
        return open_shards(data)
    return FolderSource(data)
