"""Stage-1 autoencoder: encoder E and decoder D (METHOD.md, "Stage 1").

E: conv3x3/s1 -> 32, then four conv2x2/s2 -> 64, 128, 256, 512, each followed by BatchNorm and
LeakyReLU(0.2). A 96x96 image gives a 6x6x512 map phi(x): one cell per 16x16 block.
D: four stages (bilinear x2 upsampling, conv3x3) -> 256, 128, 64, 32 with BatchNorm + LeakyReLU(0.2),
then conv3x3 -> 3 with tanh. The decoder exposes its stages so that stage 2 can interleave the repair
blocks between them without copying the frozen weights.

``AutoEncoder(init="official")`` draws every conv as the official code does (``AutoEncoder.py:17,26``: TF variance
scaling, FAN_AVG, factor 2, truncated normal; D5's bias zero, slim's default); ``default`` keeps PyTorch's
(FIDELITY.md D14).

``upsampling`` is the decoder's bilinear x2 (FIDELITY.md D15): ``half_pixel`` (PyTorch's ``F.interpolate``, this
project's default so far) or ``tf_legacy``, TF1's ``tf.image.resize_images(..., BILINEAR)`` as the official decoder
calls it (``layers.py:38``: no half-pixel centres, out[2m] = in[m], out[2m+1] = (in[m] + in[m+1]) / 2, the last row
and column repeated), which ``F.interpolate`` does not offer. A decoder trained in one convention and run in the
other gives other images: the convention is part of the checkpoint's config (``decoder_upsampling``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .tf_init import tf_fans, variance_scaling_

# TF's batch_norm(decay=0.975, epsilon=1e-3) in PyTorch's convention (momentum = 1 - decay).
BN_MOMENTUM = 0.025
BN_EPS = 1e-3
LEAK = 0.2

ENCODER_WIDTHS = (32, 64, 128, 256, 512)
DECODER_WIDTHS = (256, 128, 64, 32)
INITS = ("default", "official")
UPSAMPLINGS = ("half_pixel", "tf_legacy")


def conv_bn_lrelu(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),  # BN makes a bias redundant
        nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.LeakyReLU(LEAK, inplace=True),
    )


class Encoder(nn.Module):
    """E: (B, 3, H, W) in [-1, 1] -> phi (B, 512, H/16, W/16)."""

    def __init__(self) -> None:
        super().__init__()
        w = ENCODER_WIDTHS
        layers = [conv_bn_lrelu(3, w[0], 3, 1, 1)]
        layers += [conv_bn_lrelu(w[i], w[i + 1], 2, 2, 0) for i in range(4)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output, shallow to deep (for probing the encoder as a baseline)."""
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def _legacy_x2_forward(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x (N, H, W, C), along dim 1 or 2: even outputs copy x, odd ones are ``x + (next - x) * 0.5`` (TF's
    ``a + (b - a) * lerp``, rounded as TF rounds it), the last one a copy of the last input."""
    size = x.shape[dim]
    shape = list(x.shape)
    shape.insert(dim + 1, 2)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)  # (..., size, 2, ...): the pairs, interleaved
    even, odd = out.select(dim + 1, 0), out.select(dim + 1, 1)
    even.copy_(x)
    head, tail = x.narrow(dim, 0, size - 1), x.narrow(dim, 1, size - 1)
    torch.add(head, tail - head, alpha=0.5, out=odd.narrow(dim, 0, size - 1))
    odd.narrow(dim, size - 1, 1).copy_(x.narrow(dim, size - 1, 1))
    return out.flatten(dim, dim + 1)


def _legacy_x2_backward(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The adjoint: an input gets its even output's gradient, half of each odd neighbour's, and all of the last."""
    size = grad.shape[dim] // 2
    shape = list(grad.shape)
    shape[dim: dim + 1] = [size, 2]
    pairs = grad.reshape(shape)
    even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    out = even.clone(memory_format=torch.contiguous_format)
    half = odd.narrow(dim, 0, size - 1) * 0.5
    out.narrow(dim, 0, size - 1).add_(half)
    out.narrow(dim, 1, size - 1).add_(half)
    out.narrow(dim, size - 1, 1).add_(odd.narrow(dim, size - 1, 1))
    return out


class _TFLegacyUpsample2x(torch.autograd.Function):
    """Written out in NHWC order with its own backward: the same values as composing ``cat``/``stack`` views, at a
    third to a sixth of their time on a CPU in bf16 channels_last (the generic ops' backward dominated)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        ctx.channels_last = not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last)
        out = _legacy_x2_forward(_legacy_x2_forward(h.permute(0, 2, 3, 1), 2), 1).permute(0, 3, 1, 2)
        return out if ctx.channels_last else out.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = _legacy_x2_backward(_legacy_x2_backward(grad.permute(0, 2, 3, 1), 1), 2).permute(0, 3, 1, 2)
        return out if ctx.channels_last else out.contiguous()


def tf_legacy_upsample2x(h: torch.Tensor) -> torch.Tensor:
    """TF1's legacy bilinear x2 of (B, C, H, W): source coordinate = destination / 2, so even outputs copy an input
    and odd ones average it with the next (the last repeats). Computed as TF's CPU kernel computes it, along the
    width first, then the height, each as ``a + (b - a) * lerp``, so that it agrees with TF to the last bit. The
    output keeps the input's memory layout (NCHW or channels_last)."""
    return _TFLegacyUpsample2x.apply(h)


def upsample2x(h: torch.Tensor, upsampling: str) -> torch.Tensor:
    if upsampling == "tf_legacy":
        return tf_legacy_upsample2x(h)
    return F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)


class DecoderStage(nn.Module):
    """Bilinear x2 upsampling, then conv3x3 + BN + LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, upsampling: str = "half_pixel") -> None:
        super().__init__()
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f"unknown decoder upsampling {upsampling!r}: use one of {', '.join(UPSAMPLINGS)}")
        self.upsampling = upsampling
        self.block = conv_bn_lrelu(in_ch, out_ch, 3, 1, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block(upsample2x(h, self.upsampling))


class Decoder(nn.Module):
    """D: phi (B, 512, g, g) -> image (B, 3, 16g, 16g) in [-1, 1].

    ``stages`` are D1..D4 and ``to_rgb`` is D5; ``repair.RepairingDecoder`` calls them one by one.
    """

    def __init__(self, upsampling: str = "half_pixel") -> None:
        super().__init__()
        widths = (ENCODER_WIDTHS[-1],) + DECODER_WIDTHS
        self.stages = nn.ModuleList(DecoderStage(widths[i], widths[i + 1], upsampling) for i in range(4))
        self.to_rgb = nn.Conv2d(DECODER_WIDTHS[-1], 3, 3, padding=1)
        self.upsampling = upsampling

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        h = phi
        for stage in self.stages:
            h = stage(h)
        return torch.tanh(self.to_rgb(h))


class AutoEncoder(nn.Module):
    def __init__(self, init: str = "default", upsampling: str = "half_pixel") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown autoencoder init {init!r}: use one of {', '.join(INITS)}")
        self.encoder = Encoder()
        self.decoder = Decoder(upsampling)
        if init == "official":
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    variance_scaling_(module.weight, *tf_fans(module))
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
