"""The repair network R1..R5 inside the frozen decoder (METHOD.md, "Stage 2").

One block before each decoder stage and one before the final conv, at 6x6x512, 12x12x256, 24x24x128,
48x48x64 and 96x96x32 for 96 px images. A block sees the features and the keep mask:

    r = conv3x3(concat[h, keep_mask]) -> BN -> LeakyReLU(0.2) -> conv3x3 (with bias)
    out = h + (1 - keep_mask) * r          (masked repair: kept cells are left exactly as they are)
    out = h + r                            (ablation c, "unmasked": the repair may change everything)

The mask reaching each block is the previous one upsampled x2 by nearest neighbour.

Initialisation (``init``, FIDELITY.md D3):

- ``identity`` (our default): the last conv starts at zero, so R starts as the identity and the first fakes are
  plain damage; the first conv keeps PyTorch's default;
- ``default``: PyTorch's default for both convs;
- ``official``: both convs drawn as the official code does (``SpotNet.py:26,34``: TF variance scaling, FAN_AVG,
  factor 2, truncated normal), the last conv's bias zero (slim's default), so the first fakes are noisy.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoencoder import BN_EPS, BN_MOMENTUM, DECODER_WIDTHS, ENCODER_WIDTHS, LEAK, Decoder
from .damage import upsample_mask
from .tf_init import tf_fans, variance_scaling_

REPAIR_WIDTHS = (ENCODER_WIDTHS[-1],) + DECODER_WIDTHS  # 512, 256, 128, 64, 32
INITS = ("identity", "default", "official")


def mask_in_layout_of(mask: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The one-channel mask viewed with channels_last strides when ``h`` is channels_last (a free view: for one
    channel both layouts hold the same bytes). ``torch.cat`` keeps channels_last only when every input has those
    strides; otherwise the concatenation comes out NCHW and the convolution converts it, forward and backward
    (2% of a stage-2 step on CPU, measured)."""
    if mask.shape[1] != 1 or h.is_contiguous() or not h.is_contiguous(memory_format=torch.channels_last):
        return mask
    batch, _, height, width = mask.shape
    return mask.contiguous().as_strided(mask.shape, (height * width, 1, width, 1))


class RepairBlock(nn.Module):
    def __init__(self, channels: int, masked: bool = True, init: str = "identity") -> None:
        super().__init__()
        self.masked = masked
        self.body = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.LeakyReLU(LEAK, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=True),
        )
        if init == "identity":
            # Our choice: start as the identity, so the first fakes are plain damage that C can learn to
            # spot before R learns to hide it (a plain port with default init lost the game at once).
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)
        elif init == "official":
            for conv in (self.body[0], self.body[-1]):
                variance_scaling_(conv.weight, *tf_fans(conv))
            nn.init.zeros_(self.body[-1].bias)
        elif init != "default":
            raise ValueError(f"unknown repair init {init!r}: use one of {', '.join(INITS)}")

    def forward(self, h: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
        keep = mask_in_layout_of(keep_mask.to(h.dtype), h)
        residual = self.body(torch.cat([h, keep], dim=1))
        if self.masked:
            return h + (1.0 - keep) * residual
        return h + residual


class RepairNetwork(nn.Module):
    """R1..R5: the only trainable part of the generator in stage 2."""

    def __init__(self, masked: bool = True, init: str = "identity") -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RepairBlock(c, masked=masked, init=init) for c in REPAIR_WIDTHS)


def decode_with_repair(
    decoder: Decoder, repair: RepairNetwork | None, phi_hat: torch.Tensor, keep_mask: torch.Tensor
) -> torch.Tensor:
    """Decode damaged features through the frozen decoder with R1..R5 interleaved (``repair=None``: no repair).

    The decoder is passed in rather than owned, so the frozen weights exist once, in the autoencoder.
    """
    h, mask = phi_hat, keep_mask.to(phi_hat.dtype)
    for i, stage in enumerate(decoder.stages):
        if repair is not None:
            h = repair.blocks[i](h, mask)
        h = stage(h)  # (B, C_i, 2s, 2s)
        mask = upsample_mask(mask, h.shape[-1])
    if repair is not None:
        h = repair.blocks[-1](h, mask)
    return torch.tanh(decoder.to_rgb(h))
