"""Tar shards in the WebDataset layout: ``spotart pack`` (``spotart.data.pack``) writes them, ``ShardSource``
reads them by index.

Layout: ``PREFIX-000000.tar``, ``PREFIX-000001.tar``, ... each holding one ``<key>.jpg`` per image, plus
``<key>.cls`` (the class index as ASCII digits) when the source folder had class folders, and ``index.json``
beside them: the image count, the class names, and per shard its byte size, image count and every member's
byte range. The shards read with the ``webdataset`` library as they are (tests/test_shards.py checks it).

Reading is map-style, not streamed: the index (or, for shards that have none, one scan of the tar headers when
they are opened) gives every image's offset, so an image is one positioned read from a file opened lazily in
each loader worker. ``SeededSampler`` therefore shuffles over all images, exact resume and the torchrun split work
as they do for folders, and image ``i`` of a packed folder is image ``i`` of its shards.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import DataError
from .images import IMAGE_EXTENSIONS, to_rgb

INDEX_NAME = "index.json"
INDEX_FORMAT = "spotart-shards/1"
IMAGE_MEMBER_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "tif", "tiff")  # what a shard image may be
TAR_END = 2 * tarfile.BLOCKSIZE  # a complete tar ends with two zero blocks
MAX_OPEN_SHARDS = 64  # file descriptors one process keeps open (least recently used closed first)


def is_shard_data(data: str) -> bool:
    """True for a shard pattern (``DIR/train-{000000..000009}.tar``, a glob, one ``.tar``) or a shard folder."""
    if data.endswith(".tar") or ("{" in data and ".tar" in data):
        return True
    path = Path(data).expanduser()
    if not path.is_dir():
        return False
    if (path / INDEX_NAME).is_file():
        return True
    # a folder of shards written by another tool: tar files and no image that a folder source would read
    return any(path.glob("*.tar")) and not any(
        name.lower().endswith(IMAGE_EXTENSIONS) for _, _, names in os.walk(path) for name in names)


def expand_pattern(pattern: str) -> list[Path]:
    """Brace expansion (as WebDataset and the shell do it), then globbing; each listed shard must exist."""
    from braceexpand import braceexpand

    paths: list[Path] = []
    for item in braceexpand(os.path.expanduser(pattern)):
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            raise DataError(f"no shard matches {item}")
        paths.extend(Path(m) for m in matches)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"shard not found: {missing[0]}{more}")
    return paths


def split_member_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key runs up to the first dot of the file name, the extension is the rest."""
    match = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    return (match.group(1), match.group(2).lower()) if match else (name, "")


def scan_shard(path: Path) -> dict[str, Any]:
    """One shard's index entry from its tar headers: every image member's key, byte range and label."""
    size = path.stat().st_size
    samples: dict[str, dict[str, Any]] = {}
    end = 0
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                end = info.offset_data + info.size
                if end > size:
                    raise DataError(f"shard {path} is truncated: member {info.name} runs past the end of the file; "
                                    "copy or pack it again")
                key, ext = split_member_name(info.name)
                sample = samples.setdefault(key, {})
                if ext == "cls":
                    text = tar.extractfile(info).read().decode("ascii", "replace").strip()
                    if not re.fullmatch(r"-?\d+", text):
                        raise DataError(f"shard {path}: {info.name} holds {text[:20]!r}, not a class index")
                    sample["label"] = int(text)
                elif ext in IMAGE_MEMBER_EXTENSIONS and "offset" not in sample:
                    sample.update(offset=info.offset_data, size=info.size, ext=ext)
    except tarfile.TarError as err:
        if size == 0 or "unexpected end of data" in str(err):
            raise DataError(f"shard {path} is truncated ({err} after {size} bytes); copy or pack it again"
                            ) from None
        raise DataError(f"shard {path} is not a readable tar file ({err}); copy or pack it again") from None
    with open(path, "rb") as handle:  # tarfile stops quietly when a file is cut at a header: check the end marker
        handle.seek(_round_up(end))
        if len(handle.read(TAR_END)) < TAR_END:
            raise DataError(f"shard {path} is truncated: its end-of-archive marker is missing; copy or pack it again")
    # [key, offset, size, label], and the extension when it is not "jpg" (the index stays small)
    members = [[key, s["offset"], s["size"], s.get("label", -1), *([s["ext"]] if s["ext"] != "jpg" else [])]
               for key, s in samples.items() if "offset" in s]
    return {"name": path.name, "bytes": size, "images": len(members), "members": members}


def _round_up(offset: int) -> int:
    return -(-offset // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def read_index(folder: Path) -> dict[str, Any] | None:
    path = folder / INDEX_NAME
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"shard index {path} cannot be read ({err}): pack the folder again") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise DataError(f"{path} is not a spotart shard index (format {INDEX_FORMAT})")
    return index


class ShardSource:
    """The images of tar shards, indexed: ``load(i)`` is one positioned read and a JPEG decode."""

    def __init__(self, shards: list[Path], entries: list[dict[str, Any]], classes: list[str], name: str) -> None:
        self.shards, self.name = shards, name
        self.shard_of: list[int] = []
        self.keys: list[str] = []
        self.offsets: list[int] = []
        self.sizes: list[int] = []
        self.labels: list[int] = []
        self.exts: list[str] = []
        for number, entry in enumerate(entries):
            for key, offset, size, label, *ext in entry["members"]:
                self.shard_of.append(number)
                self.keys.append(key)
                self.offsets.append(offset)
                self.sizes.append(size)
                self.labels.append(label)
                self.exts.append(ext[0] if ext else "jpg")
        if not self.keys:
            raise DataError(f"no images in the shards {name}")
        labelled = sum(label >= 0 for label in self.labels)
        if 0 < labelled < len(self.labels):
            raise DataError(f"{len(self.labels) - labelled} of the {len(self.labels)} images in {name} have no "
                            ".cls label: label all of them or none")
        if labelled and not classes:  # shards from another tool: the class indices are the names
            classes = [str(i) for i in range(max(self.labels) + 1)]
        self.classes = list(classes) if labelled else []
        self._files: OrderedDict[int, Any] = OrderedDict()  # opened lazily, per process
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:  # loader workers open their own files
        return {**self.__dict__, "_files": OrderedDict()}

    def _file(self, number: int):
        if self._pid != os.getpid():  # a forked worker: the parent's handles share its file offsets
            self._files, self._pid = OrderedDict(), os.getpid()
        handle = self._files.get(number)
        if handle is None:
            if len(self._files) >= MAX_OPEN_SHARDS:
                self._files.popitem(last=False)[1].close()
            handle = self._files[number] = open(self.shards[number], "rb")  # noqa: SIM115 - kept open, closed above
        self._files.move_to_end(number)
        return handle

    def read_bytes(self, index: int) -> bytes:
        handle = self._file(self.shard_of[index])
        handle.seek(self.offsets[index])
        data = handle.read(self.sizes[index])
        if len(data) != self.sizes[index]:
            raise OSError(f"{self.shards[self.shard_of[index]]} ends inside this member (truncated)")
        return data

    def load(self, index: int) -> tuple[Image.Image, int]:
        with Image.open(io.BytesIO(self.read_bytes(index))) as img:
            img.load()
            return to_rgb(img), self.labels[index]

    def describe(self, index: int) -> str:
        return f"{self.shards[self.shard_of[index]]}:{self.keys[index]}.{self.exts[index]}"

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()


def open_shards(data: str) -> ShardSource:
    """A shard folder (with ``index.json``, or just ``.tar`` files) or a pattern of shards."""
    path = Path(data).expanduser()
    if path.is_dir():
        index = read_index(path)
        if index is not None:
            shards = [path / entry["name"] for entry in index["shards"]]
        else:
            shards = sorted(path.glob("*.tar"))
            if not shards:
                raise DataError(f"no .tar shards in {path}")
        name = str(path.resolve())
    else:
        shards = expand_pattern(data)
        name = os.path.abspath(os.path.expanduser(data))  # the pattern names exactly these shards (a feature cache key)
    entries, classes = [], None
    indexes: dict[Path, dict[str, Any] | None] = {}
    for shard in shards:
        if not shard.is_file():
            raise DataError(f"shard not found: {shard} (listed in {shard.parent / INDEX_NAME})")
        folder = shard.parent
        if folder not in indexes:
            indexes[folder] = read_index(folder)
        index = indexes[folder]
        entry = next((e for e in index["shards"] if e["name"] == shard.name), None) if index else None
        if entry is None:
            entry = scan_shard(shard)
        else:
            actual = shard.stat().st_size
            if actual != entry["bytes"]:
                state = "truncated" if actual < entry["bytes"] else "changed since it was packed"
                raise DataError(f"shard {shard} is {state}: {actual} bytes, {folder / INDEX_NAME} says "
                                f"{entry['bytes']}; copy or pack it again")
            folder_classes = index.get("classes", [])
            if classes is not None and folder_classes != classes:
                raise DataError(f"the shards in {folder} name other classes than the shards listed before them")
            classes = folder_classes
        entries.append(entry)
    return ShardSource(shards, entries, classes or [], name)
