import pytest
import torch

from spotart.models import AutoEncoder, RepairBlock, RepairNetwork, decode_with_repair, sample_keep_mask
from spotart.models.damage import upsample_mask


@pytest.mark.parametrize("channels,size", [(512, 6), (32, 96), (64, 4)])
def test_masked_repair_leaves_kept_cells_exactly_unchanged(channels, size):
    block = RepairBlock(channels, masked=True, init="default").train()
    h = torch.randn(3, channels, size, size)
    keep = sample_keep_mask(3, size, 0.5)
    out = block(h, keep)
    kept = keep.bool().expand_as(h)
    assert torch.equal(out[kept], h[kept])
    assert not torch.allclose(out[~kept], h[~kept])  # dropped cells do change


def test_unmasked_repair_changes_kept_cells_too():
    block = RepairBlock(16, masked=False, init="default")
    h = torch.randn(2, 16, 6, 6)
    keep = torch.ones(2, 1, 6, 6)
    assert not torch.allclose(block(h, keep), h)


def test_zero_init_starts_as_identity():
    block = RepairBlock(16, init="identity")
    h = torch.randn(2, 16, 6, 6)
    assert torch.equal(block(h, sample_keep_mask(2, 6, 0.5)), h)


def test_repair_in_decoder_keeps_image_outside_dropped_blocks():
    """With every cell kept, the repairing decoder equals the plain decoder, bit for bit."""
    ae = AutoEncoder().eval()
    repair = RepairNetwork(masked=True, init="default").eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        phi = ae.encoder(x)
        keep = torch.ones(2, 1, 4, 4)
        assert torch.equal(decode_with_repair(ae.decoder, repair, phi, keep), ae.decoder(phi))


def test_mask_reaching_each_block_is_upsampled_by_nearest_neighbour():
    seen = []
    repair = RepairNetwork(masked=True)
    for block in repair.blocks:
        block.register_forward_pre_hook(lambda mod, args: seen.append(args[1].clone()))
    ae = AutoEncoder().eval()
    keep = sample_keep_mask(1, 6, 0.5)
    with torch.no_grad():
        decode_with_repair(ae.decoder, repair, torch.randn(1, 512, 6, 6), keep)
    assert [m.shape[-1] for m in seen] == [6, 12, 24, 48, 96]
    for mask in seen:
        assert torch.equal(mask, upsample_mask(keep, mask.shape[-1]))
