"""``spotart pack``: an image folder written as tar shards in the WebDataset layout, with the index that
``spotart.data.shards`` reads them by (the layout is described there).

Images are stored in the folder source's order, so image ``i`` of a packed folder is image ``i`` of its shards.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import DataError
from .images import to_rgb
from .shards import INDEX_FORMAT, INDEX_NAME, scan_shard
from .sources import FolderSource

log = logging.getLogger("spotart.shards")

DEFAULT_SHARD_SIZE = 1000  # images per shard
REENCODE_QUALITY = 95  # JPEG quality for images that must be re-encoded (not JPEG, or resized) when none is given


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
