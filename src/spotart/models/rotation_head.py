"""RotNet's rotation classifier on the discriminator's trunk (Gidaris, Singh & Komodakis, ICLR 2018).

The head follows RotNet's AlexNet in the authors' code (github.com/gidariss/FeatureLearningRotNet,
``architectures/AlexNet.py``, used by ``config/ImageNet_RotNet_AlexNet.py`` with ``num_classes = 4``):

    conv5 -> pool5 (max 3x3, stride 2) -> flatten -> fc 4096 (no bias) -> BatchNorm1d -> ReLU
          -> fc 4096 (no bias) -> BatchNorm1d -> ReLU -> fc 4

with PyTorch's default initialisation and BatchNorm settings, no dropout, as there. Two adaptations to our trunk:

- pool5 pads by 1 ('same', as the trunk's pool1 and pool2): conv5's g x g grid (g = image size / 16) becomes
  ceil(g / 2), so the head works at every size the trunk takes (2x2 at 32 px, where an unpadded 3x3 pool cannot
  run). The first fc therefore reads 256 x 1 x 1 = 256 values at 32 px, 256 x 2 x 2 = 1,024 at 64 px and
  256 x 3 x 3 = 2,304 at 96 px, against 256 x 6 x 6 = 9,216 at RotNet's 224 px.
- the trunk is spotart's (``Trunk``: LRN after conv1 and conv2, BatchNorm on conv5 only), not RotNet's
  BatchNorm-after-every-conv AlexNet: the point of the yardstick is the same network under another pretext task.
"""

from __future__ import annotations

import torch
from torch import nn

from .discriminator import INITS, Trunk, check_resolution

ROTATIONS = 4  # 0, 90, 180, 270 degrees


def pooled_grid(image_size: int) -> int:
    """Side of pool5's output: conv5's grid (image size / 16) halved, rounded up."""
    return -(-check_resolution(image_size) // 2)


class RotationHead(nn.Module):
    """conv5 (B, 256, g, g) -> rotation logits (B, 4)."""

    def __init__(self, image_size: int, hidden: int = 4096) -> None:
        super().__init__()
        side = pooled_grid(image_size)
        self.pool5 = nn.MaxPool2d(3, stride=2, padding=1)
        self.fc_block = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * side * side, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden, ROTATIONS)

    def forward(self, conv5: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fc_block(self.pool5(conv5)))


class RotNet(nn.Module):
    """spotart's conv1..conv5 trunk with RotNet's head. The trunk is built (and initialised) first, so after
    ``torch.manual_seed(s)`` it starts as the random-init baseline of seed s with the same ``init`` and ``padding``
    (``probe --init random --seed s``, with ``--set disc_init=... --set disc_padding=...`` for other schemes)."""

    def __init__(self, image_size: int, hidden: int = 4096, padding: str = "symmetric", init: str = "default") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown trunk init {init!r}: use one of {', '.join(INITS)}")
        self.image_size = image_size
        self.trunk = Trunk(padding, init=init)
        self.head = RotationHead(image_size, hidden)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.trunk.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"RotNet built for {self.image_size}x{self.image_size} images got "
                             f"{tuple(images.shape[-2:])}")
        return self.head(self.trunk(images))
