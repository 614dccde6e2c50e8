"""What every image source shares: the file types it reads, the smallest usable image, the ``ImageSource``
protocol (``load(i)`` gives an 8-bit RGB image and its label), and ``to_rgb``, which makes any PIL image one."""

from __future__ import annotations

from typing import Protocol

from PIL import Image, ImageFile

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error we count, not a half-grey image
MIN_SIDE = 8  # images smaller than this are skipped: they cannot be cropped meaningfully


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int) -> tuple[Image.Image, int]: ...

    def describe(self, index: int) -> str: ...


def to_rgb(img: Image.Image) -> Image.Image:
    """Greyscale, palette, CMYK, 16-bit and alpha images become 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit to 8-bit, keeping the range
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img
