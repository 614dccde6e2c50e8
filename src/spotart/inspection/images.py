"""Tensors to pictures: the conversions the report and the spotter share."""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def image_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB picture."""
    array = image.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def cells_to_pil(cells: torch.Tensor, size: int) -> Image.Image:
    """(g, g) values in [0, 1] -> greyscale picture of ``size`` px, one flat block per cell (white = 1)."""
    up = F.interpolate(cells.detach().float().cpu()[None, None], size=(size, size), mode="nearest")[0, 0]
    return Image.fromarray(up.mul(255).round().clamp(0, 255).to(torch.uint8).numpy(), mode="L")


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def heat_overlay(picture: Image.Image, cells: np.ndarray, strength: float = 0.65) -> Image.Image:
    """Tint ``picture`` with the inferno colour of each cell's value in [0, 1], more strongly where it is higher.

    The tint grows with the value so that a cell near 0 shows the picture untouched: the eye goes to
    where the discriminator sees artifacts, not to a uniform wash of colour.
    """
    from matplotlib import colormaps

    width, height = picture.size
    grid = cells.shape[0]
    rows = np.minimum(np.arange(height) * grid // height, grid - 1)
    cols = np.minimum(np.arange(width) * grid // width, grid - 1)
    values = np.clip(cells, 0.0, 1.0)[rows[:, None], cols[None, :]]  # (H, W): each pixel takes its cell's value
    colour = colormaps["inferno"](values)[..., :3]
    base = np.asarray(picture.convert("RGB"), dtype=np.float64) / 255.0
    weight = strength * values[..., None]
    blended = base * (1.0 - weight) + colour * weight
    return Image.fromarray(np.round(blended * 255).astype(np.uint8), mode="RGB")
