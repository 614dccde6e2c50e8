"""Damage of encoder features (METHOD.md, "Stage 2").

A keep mask Omega on the encoder grid holds one Bernoulli draw per image and cell, shared by all
channels: 1 = kept, 0 = dropped. Dropped cells are filled with the 3x3 average of the clean features
around them (padding cells not counted):

    phi_hat = Omega * phi + (1 - Omega) * avg3x3(phi)

The official code names its mask argument "drop" although it holds kept cells; here it is ``keep_mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_keep_mask(
    batch: int,
    grid: int,
    drop_rate: float,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Keep mask (B, 1, grid, grid): each cell is 1 (kept) with probability ``1 - drop_rate``."""
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    noise = torch.rand(batch, 1, grid, grid, device=device, generator=generator)
    return keep_from_uniform(noise, drop_rate).to(dtype)


def keep_from_uniform(noise: torch.Tensor, drop_rate: float) -> torch.Tensor:
    """A cell is kept where its uniform draw is at least ``drop_rate``: the official ``floor(keep_rate + U)``
    (``layers.py`` ``pixel_dropout_avg``) without its rounding of ``keep_rate + U``."""
    return noise >= drop_rate


def fill_features(phi: torch.Tensor) -> torch.Tensor:
    """The fill of dropped cells: the 3x3 average of the clean map (B, C, g, g), padding cells not counted (the
    official ``avg_pool2d(..., padding='SAME')``, ``layers.py``'s ``pixel_dropout_avg``)."""
    return F.avg_pool2d(phi, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def damage_features(phi: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Replace dropped cells of ``phi`` (B, C, g, g) by the 3x3 average of the clean map."""
    if keep_mask.shape[-2:] != phi.shape[-2:] or keep_mask.shape[1] != 1:
        raise ValueError(f"keep_mask {tuple(keep_mask.shape)} does not match features {tuple(phi.shape)}")
    smoothed = fill_features(phi)
    keep = keep_mask.to(phi.dtype)
    return keep * phi + (1.0 - keep) * smoothed


def upsample_mask(keep_mask: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of a keep mask to ``size`` x ``size`` (one cell -> a block)."""
    return F.interpolate(keep_mask, size=(size, size), mode="nearest")
