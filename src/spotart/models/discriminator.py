"""The discriminator C: AlexNet to conv5 with a mask head and a real/fake head (METHOD.md, "Stage 2").

'Same' padding keeps conv5 at 1/16 of the input (6x6 at 96 px), cell for cell on the keep mask's grid:
conv1 96 11x11/s4 -> ReLU -> maxpool 3/2 -> LRN; conv2 256 5x5 g2 -> ReLU -> maxpool 3/2 -> LRN;
conv3 384 3x3; conv4 384 3x3 g2; conv5 256 3x3 g2 + BN without scale.
Mask head: conv3x3 -> one logit per cell. Class head: fc 4096 + BN + ReLU + dropout 0.5 -> 2 logits.
Input: images in [-1, 1] are mapped to the 0..255 scale minus the RGB mean, as in the official code.

``forward_features`` returns conv1..conv5 (after their ReLU), the features that are transferred.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

RGB_MEAN = (123.68, 116.78, 103.94)  # ImageNet mean on the 0..255 scale (official code)
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _same(size: int, stride: int) -> int:
    return -(-size // stride)  # ceil: TF 'SAME' output size


def encoder_grid(image_size: int) -> int:
    """Grid of the encoder's output: conv3x3/s1 then four conv2x2/s2 (each floors)."""
    size = image_size
    for _ in range(4):
        size //= 2
    return size


def conv5_grid(image_size: int) -> int:
    """Grid of the discriminator's conv5: /4 (conv1), /2 (pool1), /2 (pool2), all 'same'."""
    return _same(_same(_same(image_size, 4), 2), 2)


def check_resolution(image_size: int) -> int:
    """Return the shared grid size, or raise a clear error when the grids or the decoder do not line up."""
    enc, c5 = encoder_grid(image_size), conv5_grid(image_size)
    if image_size < 32 or image_size % 16 or enc != c5:
        raise ValueError(
            f"image size {image_size} is not supported: it must be a multiple of 16 and at least 32 so that the "
            f"encoder grid ({enc}x{enc}) equals the discriminator's conv5 grid ({c5}x{c5}) and the decoder "
            f"returns the input size (try {max(32, 16 * round(image_size / 16))})"
        )
    return enc


class LocalResponseNorm(nn.Module):
    """AlexNet's LRN, ``x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta``.

    Same values as ``nn.LocalResponseNorm``, but the channel window sum is a fixed banded 1x1 convolution
    (a matrix product) instead of PyTorch's 3-d average pooling, which on CPU cost 6% of a stage-2 step.
    """

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        index = torch.arange(channels)
        offset = index.view(1, -1) - index.view(-1, 1)  # [out, in]: in - out
        band = ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).float() * (alpha / size)
        self.register_buffer("band", band.view(channels, channels, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.conv2d(x * x, self.band.to(x.dtype))  # (B, C, H, W): alpha/size * windowed sum of squares
        return x / (scale + self.k).pow(self.beta)


class BatchNormNoScale(nn.Module):
    """BatchNorm with a learned shift only (TF's batch_norm(scale=False)): conv5's normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False, eps=1e-3, momentum=0.025)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.bias.view(1, -1, 1, 1).to(x.dtype)


class DiscriminatorOutput(NamedTuple):
    class_logits: torch.Tensor  # (B, 2): index 1 = real
    mask_logits: torch.Tensor  # (B, 1, g, g): > 0 means "kept" (not damaged)


class Trunk(nn.Module):
    """conv1..conv5: the transferable backbone (what ``spotart export`` saves)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4, padding=5)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.norm1 = LocalResponseNorm(96, 5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.norm2 = LocalResponseNorm(256, 5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2, bias=False)
        self.bn5 = BatchNormNoScale(256)
        self.relu = nn.ReLU(inplace=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> 0..255 minus the RGB mean."""
        return (images + 1.0) * 127.5 - self.rgb_mean.to(images.dtype)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(images)
        c1 = self.relu(self.conv1(x))  # (B, 96, H/4, W/4)
        x = self.norm1(self.pool1(c1))
        c2 = self.relu(self.conv2(x))  # (B, 256, H/8, W/8)
        x = self.norm2(self.pool2(c2))
        c3 = self.relu(self.conv3(x))  # (B, 384, H/16, W/16)
        c4 = self.relu(self.conv4(c3))
        c5 = self.relu(self.bn5(self.conv5(c4)))  # (B, 256, H/16, W/16)
        return {"conv1": c1, "conv2": c2, "conv3": c3, "conv4": c4, "conv5": c5}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)["conv5"]


class Discriminator(nn.Module):
    def __init__(self, image_size: int = 96, init: str = "default") -> None:
        super().__init__()
        self.image_size = image_size
        self.grid = check_resolution(image_size)
        self.trunk = Trunk()
        self.mask_head = nn.Conv2d(256, 1, 3, padding=1)
        # nn.Linear, not a 1x1 conv: in torch 2.14 on AMX CPUs a 1x1 Conv2d from 4096 to 1-2 channels under
        # bf16 autocast corrupts the heap (METHOD.md, "Costs worth knowing").
        self.class_head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * self.grid * self.grid, 4096, bias=False),
            nn.BatchNorm1d(4096, eps=1e-3, momentum=0.025),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, 2),
        )
        if init == "normal":
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(module.weight, std=0.01)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        elif init != "default":
            raise ValueError(f"unknown discriminator init {init!r}: use 'default' or 'normal'")

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.trunk.forward_features(images)

    def forward(self, images: torch.Tensor) -> DiscriminatorOutput:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(
                f"discriminator built for {self.image_size}x{self.image_size} images got {tuple(images.shape[-2:])}"
            )
        conv5 = self.trunk(images)
        return DiscriminatorOutput(self.class_head(conv5), self.mask_head(conv5))
