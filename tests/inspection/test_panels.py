"""The report's figures: fixed images, one fixed damage repaired under every rule, the real/repaired mix."""

from __future__ import annotations

import pytest
import torch

from spotart.inspection import fixed_images as fixed_module
from spotart.inspection.checkpoint import discriminator_from
from spotart.inspection.fixed_images import fixed_images
from spotart.inspection.panels import damage_and_repair, real_or_repaired
from spotart.models import RepairNetwork, damage_features, decode_with_repair, sample_keep_mask
from spotart.train.checkpoints import load_checkpoint
from spotart.train.stage2 import load_autoencoder


@pytest.fixture(scope="module")
def trained(spot_checkpoint):
    payload = load_checkpoint(spot_checkpoint, expect_stage="spot")
    return payload, load_autoencoder(spot_checkpoint, 32)


@pytest.fixture(scope="module")
def images(trained, tmp_path_factory):
    return fixed_images(trained[0]["config"], 32, 4, tmp_path_factory.mktemp("scratch")).images


def test_fixed_images_are_spread_over_the_sorted_data(tiny_runs, tmp_path):
    fixed = fixed_images({"data": str(tiny_runs["data"])}, 32, 4, tmp_path)
    assert fixed.note is None and fixed.images.shape == (4, 3, 32, 32)
    assert [name.split("data/")[1] for name in fixed.names] == [
        "class_0/img_000.png", "class_0/img_008.png", "class_1/img_001.png", "class_1/img_009.png"]
    assert fixed.images.min() >= -1 and fixed.images.max() <= 1


def test_missing_data_falls_back_with_a_note(tmp_path, monkeypatch):
    missing = {"data": str(tmp_path / "gone")}
    monkeypatch.setattr(fixed_module, "take_images", lambda *a: ([], []))  # not even the photographs
    fixed = fixed_images(missing, 32, 3, tmp_path)
    assert fixed.images.shape == (3, 3, 32, 32) and "random smooth colour images" in fixed.note
    assert "data path does not exist" in fixed.note


def test_every_column_repairs_the_same_fixed_damage(trained, images):
    payload, autoencoder = trained
    panels = damage_and_repair(autoencoder, payload["repair"], 0.7, images, seed=5)
    keep_mask = sample_keep_mask(4, 2, 0.7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(panels.keep_mask, keep_mask)
    repair = RepairNetwork()
    repair.load_state_dict(payload["repair"])
    repair.eval()
    with torch.no_grad():
        phi = autoencoder.encoder(images)
        phi_hat = damage_features(phi, keep_mask)
        assert torch.equal(panels.reconstruction, autoencoder.decoder(phi))
        assert torch.equal(panels.damaged, decode_with_repair(autoencoder.decoder, None, phi_hat, keep_mask))
        assert torch.equal(panels.repaired, decode_with_repair(autoencoder.decoder, repair, phi_hat, keep_mask))
        for block in repair.blocks:
            block.masked = False
        assert torch.equal(panels.unmasked, decode_with_repair(autoencoder.decoder, repair, phi_hat, keep_mask))
    # twice through: the first pass drops what the others drop, the second pass drops more
    assert torch.all(panels.twice_keep_mask <= keep_mask)
    assert panels.twice.shape == images.shape and not torch.equal(panels.twice, panels.repaired)


def test_a_run_without_repair_network_shows_the_damage_only(trained, images):
    panels = damage_and_repair(trained[1], None, 0.7, images, seed=0)
    assert panels.damaged.shape == images.shape
    assert panels.repaired is None and panels.unmasked is None and panels.twice is None


def test_the_mix_shows_half_reconstructions_with_all_kept_masks(trained, images):
    payload, autoencoder = trained
    discriminator = discriminator_from(payload)
    grid = real_or_repaired(autoencoder, payload["repair"], discriminator, payload["config"], images, seed=2)
    assert int(grid.is_real.sum()) == 2
    with torch.no_grad():
        reconstructions = autoencoder(images)
        out = discriminator(grid.shown)
    assert torch.equal(grid.shown[grid.is_real], reconstructions[grid.is_real])
    assert torch.all(grid.true_keep[grid.is_real] == 1)
    assert torch.allclose(grid.real_probability, torch.softmax(out.class_logits, 1)[:, 1])
    assert torch.allclose(grid.predicted_keep, torch.sigmoid(out.mask_logits))
