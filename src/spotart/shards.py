"""Tar shards in the WebDataset layout: ``spotart pack`` writes them, ``ShardSource`` reads them by index.

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
import logging
import os
import re
import tarfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image

from .data import IMAGE_EXTENSIONS, DataError, FolderSource, to_rgb

log = logging.getLogger("spotart.shards")

INDEX_NAME = "index.json"
INDEX_FORMAT = "spotart-shards/1"
IMAGE_MEMBER_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "tif", "tiff")  # what a shard image may be
DEFAULT_SHARD_SIZE = 1000  # images per shard
REENCODE_QUALITY = 95  # JPEG quality for images that must be re-encoded (not JPEG, or resized) when none is given
TAR_END = 2 * tarfile.BLOCKSIZE  # a complete tar ends with two zero blocks
MAX_OPEN_SHARDS = 64  # file descriptors one process keeps open (least recently used closed first)


# ------------------------------------------------------------------------------------------------- reading
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


# ------------------------------------------------------------------------------------------------- packing
def safe_key(stem: str) -> str:
    """A key WebDataset splits correctly: no dots (its key ends at the first one), nothing a shell would trip on."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:60] or "image"


def encode_image(path: Path, max_side: int | None, quality: int | None) -> bytes:
    """The bytes stored for one image: a JPEG file as it is, unless it must be shrunk or re-encoded."""
    with Image.open(path) as img:
        too_big = max_side is not None and max(img.size) > max_side
        if quality is None and not too_big and img.format == "JPEG":
            return path.read_bytes()
        img.load()
        rgb = to_rgb(img)
    if too_big:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # keeps the aspect ratio
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality or REENCODE_QUALITY, optimize=True)
    return out.getvalue()


def shard_pattern(prefix: str, count: int) -> str:
    return f"{prefix}-{0:06d}.tar" if count == 1 else f"{prefix}-{{{0:06d}..{count - 1:06d}}}.tar"


def pack_folder(source_dir: str, out: str, shard_size: int = DEFAULT_SHARD_SIZE, max_side: int | None = None,
                quality: int | None = None, prefix: str | None = None) -> dict[str, Any]:
    """Write the images of ``source_dir`` (class folders or flat) as shards in ``out``; return the index.

    Images are stored in the folder source's order, so image ``i`` is the same in both. Files that cannot be
    opened are skipped, logged and counted in the index (``skipped``); a JPEG stored as it is is not decoded here,
    so one whose data is broken past its header is skipped and counted when read, as in a folder."""
    import webdataset as wds

    if shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, not {shard_size}")
    if quality is not None and not 1 <= quality <= 100:
        raise DataError(f"--quality must be 1..100, not {quality}")
    if max_side is not None and max_side < 8:
        raise DataError(f"--max-side must be at least 8 pixels, not {max_side}")
    source = FolderSource(source_dir)
    target = Path(out).expanduser()
    if target.exists() and ((target / INDEX_NAME).exists() or any(target.glob("*.tar"))):
        raise DataError(f"{target} already holds shards: choose another --out or delete them")
    target.mkdir(parents=True, exist_ok=True)
    prefix = safe_key(prefix or source.root.resolve().name)
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    written = 0
    writer, shard_path = None, None

    def finish_shard() -> None:
        writer.close()
        final = shard_path.with_suffix("")  # drop ".tmp": a shard appears under its name only once complete
        os.replace(shard_path, final)
        entries.append(scan_shard(final))

    for index, file in enumerate(source.files):
        try:
            data = encode_image(file, max_side, quality)
        except Exception as err:  # noqa: BLE001 - an unreadable file is skipped and counted, as in training
            skipped.append(f"{file}: {type(err).__name__}: {err}")
            if len(skipped) <= 20:
                log.warning("pack: skipped unreadable image %s", skipped[-1])
            continue
        if written % shard_size == 0:
            if writer is not None:
                finish_shard()
            shard_path = target / f"{prefix}-{len(entries):06d}.tar.tmp"
            writer = wds.TarWriter(str(shard_path), user="spotart", group="spotart", mtime=0)  # mtime 0: reproducible
        sample = {"__key__": f"{written:06d}_{safe_key(file.stem)}", "jpg": data}
        if source.classes:
            sample["cls"] = source.labels[index]
        writer.write(sample)
        written += 1
        if written % 1000 == 0:
            log.info("pack: %d / %d images", written, len(source))
    if writer is None:
        raise DataError(f"none of the {len(source)} images under {source.root} could be read")
    finish_shard()
    index = {"format": INDEX_FORMAT, "images": written, "classes": list(source.classes), "skipped": len(skipped),
             "source": str(source.root.resolve()), "max_side": max_side, "quality": quality, "shard_size": shard_size,
             "pattern": shard_pattern(prefix, len(entries)), "shards": entries}
    tmp = target / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp, target / INDEX_NAME)  # written last: a folder with an index is complete
    return index


def shard_bytes(folder: Path) -> int:
    """Bytes on disk of a shard folder's files (shards and index)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cmd_pack(args: Any) -> None:
    index = pack_folder(args.folder, args.out, args.shard_size, args.max_side, args.quality, args.prefix)
    out = Path(args.out).expanduser()
    print(f"packed {index['images']} images ({len(index['classes'])} classes, {index['skipped']} unreadable skipped) "
          f"into {len(index['shards'])} shards, {shard_bytes(out) / 2**20:.1f} MiB: {out / index['pattern']}")


def register(sub: Any) -> None:
    p = sub.add_parser("pack", help="write an image folder as tar shards (WebDataset layout) with an index",
                       description="Write an image folder (class folders or flat) as tar shards in the WebDataset "
                       "layout (<key>.jpg, plus <key>.cls when labelled) with index.json. Every command that reads "
                       "images takes the shard folder, or a pattern such as 'DIR/train-{000000..000009}.tar', as "
                       "--data.")
    p.add_argument("folder", help="image folder: class folders (labelled) or flat")
    p.add_argument("--out", required=True, help="shard folder to create")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="images per shard (default 1000)")
    p.add_argument("--max-side", type=int, help="shrink images whose longer side exceeds this (re-encodes them)")
    p.add_argument("--quality", type=int, help="re-encode every image as JPEG at this quality (1-100); by default "
                   f"JPEG files are stored as they are and others encoded at {REENCODE_QUALITY}")
    p.add_argument("--prefix", help="shard file name prefix (default: the folder's name, e.g. train-000000.tar)")
    p.set_defaults(func=cmd_pack)
