"""The decoder's two bilinear x2 conventions (``decoder_upsampling``)."""

from __future__ import annotations

import torch

from spotart.models.autoencoder import AutoEncoder, tf_legacy_upsample2x


def _by_formula(x: torch.Tensor) -> torch.Tensor:
    """TF1's legacy rule written out per output pixel: source = destination / 2, clamped at the last input."""
    _, _, height, width = x.shape
    out = torch.empty(*x.shape[:2], 2 * height, 2 * width, dtype=x.dtype)
    for y in range(2 * height):
        for z in range(2 * width):
            y0, z0 = y // 2, z // 2
            y1, z1 = min(y0 + 1, height - 1), min(z0 + 1, width - 1)
            ly, lz = (y % 2) * 0.5, (z % 2) * 0.5
            top = x[..., y0, z0] + (x[..., y0, z1] - x[..., y0, z0]) * lz
            bottom = x[..., y1, z0] + (x[..., y1, z1] - x[..., y1, z0]) * lz
            out[..., y, z] = top + (bottom - top) * ly
    return out


def test_tf_legacy_matches_the_rule_in_both_layouts_and_keeps_the_layout():
    x = torch.randn(2, 3, 4, 5)
    expected = _by_formula(x)
    assert torch.equal(tf_legacy_upsample2x(x), expected)
    assert tf_legacy_upsample2x(x).is_contiguous()
    channels_last = x.contiguous(memory_format=torch.channels_last)
    out = tf_legacy_upsample2x(channels_last)
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=torch.channels_last)


def test_tf_legacy_backward_is_the_adjoint():
    x = torch.randn(2, 3, 4, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(tf_legacy_upsample2x, (x,))
    x_last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(tf_legacy_upsample2x, (x_last,))


def test_the_convention_changes_the_decoder_and_is_kept_by_the_module():
    torch.manual_seed(0)
    legacy = AutoEncoder(init="official", upsampling="tf_legacy").eval()  # larger weights than PyTorch's default
    half_pixel = AutoEncoder(upsampling="half_pixel").eval()
    half_pixel.load_state_dict(legacy.state_dict())
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert legacy.decoder.upsampling == "tf_legacy"
    difference = (legacy(images) - half_pixel(images)).abs().max()
    assert difference > 0.05 * legacy(images).abs().max()
