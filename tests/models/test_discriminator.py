import pytest
import torch

from spotart.models import AutoEncoder, Discriminator
from spotart.models.discriminator import check_resolution


@pytest.mark.parametrize("size", [32, 48, 64, 96, 128])
def test_mask_grid_equals_conv5_grid(size):
    ae, disc = AutoEncoder().eval(), Discriminator(size).eval()
    x = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        phi = ae.encoder(x)
        feats = disc.forward_features(x)
        out = disc(x)
        recon = ae.decoder(phi)
    assert phi.shape[-2:] == feats["conv5"].shape[-2:] == out.mask_logits.shape[-2:] == (size // 16, size // 16)
    assert recon.shape == x.shape
    assert out.class_logits.shape == (2, 2)


def test_feature_shapes_at_96():
    disc = Discriminator(96).eval()
    feats = disc.forward_features(torch.zeros(1, 3, 96, 96))
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "conv1": (96, 24, 24), "conv2": (256, 12, 12), "conv3": (384, 6, 6),
        "conv4": (384, 6, 6), "conv5": (256, 6, 6),
    }


@pytest.mark.parametrize("size", [40, 100, 16, 72])
def test_unsupported_sizes_fail_at_construction_with_a_clear_message(size):
    with pytest.raises(ValueError, match=f"image size {size} is not supported"):
        Discriminator(size)


def test_wrong_input_size_is_reported():
    with pytest.raises(ValueError, match="built for 64x64"):
        Discriminator(64)(torch.zeros(2, 3, 96, 96))


def test_input_normalisation_is_0_255_minus_mean():
    disc = Discriminator(32)
    white = disc.trunk.normalize(torch.ones(1, 3, 2, 2))
    assert torch.allclose(white[0, :, 0, 0], torch.tensor([255 - 123.68, 255 - 116.78, 255 - 103.94]))


def test_check_resolution_returns_grid():
    assert check_resolution(96) == 6 and check_resolution(32) == 2


def test_local_response_norm_matches_pytorch():
    from spotart.models.discriminator import LocalResponseNorm

    x = torch.randn(2, 96, 5, 5) * 30  # large activations, as on the 0..255 input scale
    ours = LocalResponseNorm(96, 5, alpha=1e-4, beta=0.75, k=1.0)(x)
    reference = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)(x)
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-6)
