import pytest
import torch

from spotart.models import damage_features, sample_keep_mask, upsample_mask


def test_keep_mask_is_binary_with_the_requested_rate():
    gen = torch.Generator().manual_seed(0)
    mask = sample_keep_mask(256, 6, drop_rate=0.7, generator=gen)
    assert mask.shape == (256, 1, 6, 6)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.mean().item() - 0.3) < 0.01  # 9216 Bernoulli draws: std ~0.005


def test_keep_mask_differs_between_images():
    mask = sample_keep_mask(8, 6, drop_rate=0.5)
    assert not all(torch.equal(mask[0], mask[i]) for i in range(1, 8))


def test_bad_drop_rate_is_rejected():
    with pytest.raises(ValueError, match="drop_rate"):
        sample_keep_mask(2, 6, drop_rate=1.0)


def test_fill_rule_matches_hand_computed_average():
    phi = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)  # 0..8
    keep = torch.ones(1, 1, 3, 3)
    keep[0, 0, 0, 0] = 0  # corner: its 3x3 window holds 0, 1, 3, 4 (padding cells not counted)
    keep[0, 0, 1, 1] = 0  # centre: the mean of all nine values
    out = damage_features(phi, keep)
    assert out[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert out[0, 0, 1, 1].item() == pytest.approx(4.0)
    kept = keep.bool()
    assert torch.equal(out[kept], phi[kept])  # kept cells untouched


def test_fill_uses_clean_neighbours_shared_across_channels():
    phi = torch.randn(2, 5, 4, 4)
    keep = sample_keep_mask(2, 4, 0.5)
    out = damage_features(phi, keep)
    dropped = (keep == 0).expand_as(phi)
    avg = torch.nn.functional.avg_pool2d(phi, 3, 1, 1, count_include_pad=False)
    assert torch.allclose(out[dropped], avg[dropped])


def test_mask_upsampling_is_nearest_neighbour_blocks():
    keep = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    up = upsample_mask(keep, 8)
    assert up.shape == (1, 1, 8, 8)
    assert up[0, 0, :4, :4].eq(1).all() and up[0, 0, :4, 4:].eq(0).all()
    assert up[0, 0, 4:, :4].eq(0).all() and up[0, 0, 4:, 4:].eq(1).all()
