"""The discriminator C: AlexNet to conv5 with a mask head and a real/fake head (METHOD.md, "Stage 2").

conv1 96 11x11/s4 -> ReLU -> maxpool 3/2 -> LRN; conv2 256 5x5 g2 -> ReLU -> maxpool 3/2 -> LRN;
conv3 384 3x3; conv4 384 3x3 g2; conv5 256 3x3 g2 + BN without scale.
Mask head: conv3x3 -> one logit per cell. Class head: fc 4096 + BN + ReLU + dropout 0.5 -> 2 logits.
Input: images in [-1, 1] are mapped to the 0..255 scale minus the RGB mean, as in the official code.

Every layer keeps 'same' output sizes, so conv5 has one cell per 16x16 block of the image (6x6 at 96 px), the
keep mask's grid. Where each conv5 cell *looks* depends on how conv1 and the two pools pad (``padding``,
FIDELITY.md D8); a mask cell k covers pixels 16k..16k+15, centre 16k+7.5:

- ``symmetric`` (our default so far): conv1 pads 5, the pools 1 on both sides; conv5 cell k is centred at pixel
  16k, 7.5 px before its mask cell's centre;
- ``tf_same``: TensorFlow's SAME as the official code (``train_stl10.py:9`` ``disc_pad='SAME'``), asymmetric:
  conv1 (3, 4), each pool (0, 1); centre 16k+14, 6.5 px after;
- ``centred`` (our addition): conv1 (5, 5), pool1 (1, 1), pool2 (0, 1); centre 16k+8, 0.5 px after, the
  nearest that integer paddings get to 16k+7.5.

``forward_features`` returns conv1..conv5 (after their ReLU), the features that are transferred.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .tf_init import glorot_uniform_, tf_fans

RGB_MEAN = (123.68, 116.78, 103.94)  # ImageNet mean on the 0..255 scale (official code)
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
PADDINGS = ("symmetric", "tf_same", "centred")
INITS = ("default", "normal", "official")
OFFICIAL_BIAS = 0.1  # AlexNet.py:23 biases_initializer=tf.constant_initializer(0.1), on every layer with a bias

# (kernel, stride) of the layers whose padding decides where conv5's cells sit; every other layer is a stride-1
# convolution with an odd kernel, padded (k-1)/2 on both sides in every mode (TF's SAME does the same there)
_WINDOWS = {"conv1": (11, 4), "pool1": (3, 2), "pool2": (3, 2)}
# the padding each mode gives nn.Conv2d / nn.MaxPool2d themselves (symmetric); None: padded explicitly in forward
_MODULE_PADDING: dict[str, dict[str, int | None]] = {
    "symmetric": {"conv1": 5, "pool1": 1, "pool2": 1},
    "tf_same": {"conv1": None, "pool1": None, "pool2": None},
    "centred": {"conv1": 5, "pool1": 1, "pool2": None},
}


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


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
    """BatchNorm with a learned shift only (TF's batch_norm(scale=False)): conv5's normalisation, and fc_1's
    when ``fc1_bn_scale`` is off (official: ``AlexNet.py:9-15`` sets no 'scale', slim's default is False)."""

    def __init__(self, channels: int, dims: int = 2) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.norm = norm(channels, affine=False, eps=1e-3, momentum=0.025)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = self.bias.view(1, -1, *([1] * (x.dim() - 2)))
        return self.norm(x) + shift.to(x.dtype)


class DiscriminatorOutput(NamedTuple):
    class_logits: torch.Tensor  # (B, 2): index 1 = real
    mask_logits: torch.Tensor  # (B, 1, g, g): > 0 means "kept" (not damaged)


def official_init_(layer: nn.Conv2d | nn.Linear, kernel_area: int = 1) -> None:
    """slim's defaults in ``alexnet_argscope`` (AlexNet.py:16-23): Glorot-uniform weights with TF's fans (per group;
    fc layers counted as the convolutions they are officially), biases 0.1 where the layer has one."""
    glorot_uniform_(layer.weight, *tf_fans(layer, kernel_area))
    if layer.bias is not None:
        nn.init.constant_(layer.bias, OFFICIAL_BIAS)


def normal_init_(layer: nn.Conv2d | nn.Linear) -> None:
    """N(0, 0.01) weights and zero biases (``init: normal``)."""
    nn.init.normal_(layer.weight, std=0.01)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class Trunk(nn.Module):
    """conv1..conv5: the transferable backbone (what ``spotart export`` saves).

    ``padding``: where conv5's cells sit (module docstring); ``init``: ``official`` re-initialises the layers as the
    official code does, ``normal`` draws N(0, 0.01) weights with zero biases, ``default`` keeps PyTorch's. Each is
    drawn here, before any head, so that a trunk built alone after ``torch.manual_seed(s)`` (the random-init
    baseline, ``evaluation.backbones``) is the trunk a ``Discriminator`` built after the same seed starts from.
    """

    def __init__(self, padding: str = "symmetric", init: str = "default") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"unknown discriminator padding {padding!r}: use one of {', '.join(PADDINGS)}")
        self.padding = padding
        own = _MODULE_PADDING[padding]
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4, padding=own["conv1"] or 0)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=own["pool1"] or 0)
        self.norm1 = LocalResponseNorm(96, 5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=own["pool2"] or 0)
        self.norm2 = LocalResponseNorm(256, 5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2, bias=False)
        self.bn5 = BatchNormNoScale(256)
        self.relu = nn.ReLU(inplace=False)
        if init == "official":
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
                official_init_(conv)
        elif init == "normal":
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
                normal_init_(conv)
        elif init not in INITS:
            raise ValueError(f"unknown discriminator init {init!r}: use one of {', '.join(INITS)}")

    def _pad(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The explicit (asymmetric) padding of ``layer`` in this mode; zeros before conv1, -inf before a pool."""
        if _MODULE_PADDING[self.padding][layer] is not None:
            return x  # the module pads itself, symmetrically
        if self.padding == "tf_same":
            kernel, stride = _WINDOWS[layer]
            top, bottom = tf_same_pads(x.shape[-2], kernel, stride)
            left, right = tf_same_pads(x.shape[-1], kernel, stride)
        else:  # centred: only pool2, by (0, 1)
            top, bottom, left, right = 0, 1, 0, 1
        return F.pad(x, (left, right, top, bottom), value=0.0 if layer == "conv1" else float("-inf"))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> 0..255 minus the RGB mean."""
        return (images + 1.0) * 127.5 - self.rgb_mean.to(images.dtype)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(images)
        c1 = self.relu(self.conv1(self._pad(x, "conv1")))  # (B, 96, H/4, W/4)
        x = self.norm1(self.pool1(self._pad(c1, "pool1")))
        c2 = self.relu(self.conv2(x))  # (B, 256, H/8, W/8)
        x = self.norm2(self.pool2(self._pad(c2, "pool2")))
        c3 = self.relu(self.conv3(x))  # (B, 384, H/16, W/16)
        c4 = self.relu(self.conv4(c3))
        c5 = self.relu(self.bn5(self.conv5(c4)))  # (B, 256, H/16, W/16)
        return {"conv1": c1, "conv2": c2, "conv3": c3, "conv4": c4, "conv5": c5}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)["conv5"]


class Discriminator(nn.Module):
    """C. ``init``: ``default`` (PyTorch's), ``normal`` (N(0, 0.01) weights, zero biases) or ``official`` (Glorot-
    uniform with TF's fans, biases 0.1: FIDELITY.md D4); ``padding``: see the module docstring; ``fc1_bn_scale``:
    a learned scale on fc_1's BatchNorm (ours so far; the official code has none, D9)."""

    def __init__(self, image_size: int = 96, init: str = "default", padding: str = "symmetric",
                 fc1_bn_scale: bool = True) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown discriminator init {init!r}: use one of {', '.join(INITS)}")
        self.image_size = image_size
        self.grid = check_resolution(image_size)
        # the trunk's init happens inside Trunk, so that a random-init baseline built as Trunk alone
        # (evaluation.backbones) is this trunk when both are drawn after the same seed
        self.trunk = Trunk(padding, init=init)
        self.mask_head = nn.Conv2d(256, 1, 3, padding=1)
        # nn.Linear, not a 1x1 conv: in torch 2.14 on AMX CPUs a 1x1 Conv2d from 4096 to 1-2 channels under
        # bf16 autocast corrupts the heap (METHOD.md, "Costs worth knowing").
        self.class_head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * self.grid * self.grid, 4096, bias=False),
            nn.BatchNorm1d(4096, eps=1e-3, momentum=0.025) if fc1_bn_scale else BatchNormNoScale(4096, dims=1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, 2),
        )
        if init == "official":
            official_init_(self.mask_head)
            official_init_(self.class_head[1], kernel_area=self.grid * self.grid)  # fc_1: a g x g VALID conv
            official_init_(self.class_head[5])  # fc_2: a 1x1 conv
        elif init == "normal":  # the trunk drew its own
            for module in (self.mask_head, *self.class_head):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    normal_init_(module)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.trunk.forward_features(images)

    def forward(self, images: torch.Tensor) -> DiscriminatorOutput:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(
                f"discriminator built for {self.image_size}x{self.image_size} images got {tuple(images.shape[-2:])}"
            )
        conv5 = self.trunk(images)
        return DiscriminatorOutput(self.class_head(conv5), self.mask_head(conv5))


def architecture_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Discriminator`` keyword arguments that change its computation or its state dict, from a run's config
    (a checkpoint's ``config``); runs from before these keys existed get what they were trained with."""
    return {"padding": config.get("disc_padding", "symmetric"), "fc1_bn_scale": config.get("fc1_bn_scale", True)}
