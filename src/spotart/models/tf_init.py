"""The TensorFlow 1.x initialisers of the official code, with TensorFlow's fan counts (FIDELITY.md, D3, D4, D14).

TF counts fans from the kernel shape ``[kh, kw, in, out]``: ``fan_in = kh*kw*in`` and ``fan_out = kh*kw*out``.
Two places differ from PyTorch's own count:

- a grouped convolution is, officially, one ``slim.conv2d`` per group (``layers.py:60-72``), so both fans are
  per group; PyTorch's ``fan_out`` would count all groups' outputs;
- the class head's fc layers are convolutions officially (``AlexNet.py:81,84``: fc_1 a g x g VALID conv, fc_2 a
  1x1 conv), so fc_1's ``fan_out`` is ``g*g*4096``, not 4096. Our ``nn.Linear`` gets the kernel area passed in.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# TF's truncated_normal cuts at two standard deviations of the untruncated normal; the standard deviation of what
# remains is this fraction of it: sqrt(1 - 2*2*phi(2) / (Phi(2) - Phi(-2))).
TRUNCATED_STD_FRACTION = 0.8796256610342398


def tf_fans(module: nn.Conv2d | nn.Linear, kernel_area: int = 1) -> tuple[int, int]:
    """``(fan_in, fan_out)`` as TF counts them for the official layer that ``module`` stands for.

    ``kernel_area``: for an ``nn.Linear`` that is a convolution officially, the official kernel's h*w (its input
    features already include it; its outputs do not)."""
    if isinstance(module, nn.Conv2d):
        area = module.kernel_size[0] * module.kernel_size[1]
        return module.in_channels // module.groups * area, module.out_channels // module.groups * area
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features * kernel_area
    raise TypeError(f"no TF fans for {type(module).__name__}")


def glorot_uniform_std(fan_in: int, fan_out: int) -> float:
    """Standard deviation of slim's default ``xavier_initializer()``: U(+-sqrt(6 / (fan_in + fan_out)))."""
    return math.sqrt(2.0 / (fan_in + fan_out))


def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """slim's default weights initializer (``xavier_initializer``: variance scaling, factor 1, FAN_AVG, uniform)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return nn.init.uniform_(weight, -bound, bound)


def variance_scaling_scale(fan_in: int, fan_out: int, factor: float = 2.0) -> float:
    """The ``stddev`` argument TF 1.x's ``variance_scaling_initializer(factor, mode='FAN_AVG', uniform=False)``
    passes to ``truncated_normal``: ``sqrt(1.3 * factor / n)`` with ``n = (fan_in + fan_out) / 2``."""
    return math.sqrt(1.3 * factor / ((fan_in + fan_out) / 2.0))


def variance_scaling_std(fan_in: int, fan_out: int, factor: float = 2.0) -> float:
    """The standard deviation of the weights it draws (the truncation takes 12% off the scale)."""
    return variance_scaling_scale(fan_in, fan_out, factor) * TRUNCATED_STD_FRACTION


def variance_scaling_(weight: torch.Tensor, fan_in: int, fan_out: int, factor: float = 2.0) -> torch.Tensor:
    """TF 1.x ``tf.contrib.layers.variance_scaling_initializer(mode='FAN_AVG')`` (factor 2, truncated normal):
    the official init of the repair blocks (``SpotNet.py:26,34``) and of the autoencoder (``AutoEncoder.py:17,26``).
    """
    scale = variance_scaling_scale(fan_in, fan_out, factor)
    return nn.init.trunc_normal_(weight, mean=0.0, std=scale, a=-2.0 * scale, b=2.0 * scale)
