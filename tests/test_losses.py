"""Each loss against a value computed by hand on a tiny input."""

import math

import pytest
import torch

from spotart.losses import (
    autoencoder_loss,
    discriminator_loss,
    discriminator_metrics,
    flipped_label_loss,
    repair_loss,
    repair_objective,
)
from spotart.models import DiscriminatorOutput


def _out(class_logits, mask_logits):
    return DiscriminatorOutput(torch.tensor(class_logits), torch.tensor(mask_logits).view(-1, 1, 1, 2))


def _ce(logits, target):
    return -math.log(math.exp(logits[target]) / sum(math.exp(v) for v in logits))


def _bce(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_autoencoder_loss_is_30_times_mse():
    recon = torch.tensor([[0.0, 1.0], [0.5, -1.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    out = autoencoder_loss(recon, target)
    assert out["mse"].item() == pytest.approx((1 + 0 + 0.25 + 0) / 4)
    assert out["loss"].item() == pytest.approx(30 * 0.3125)


def test_discriminator_loss_by_hand():
    real = _out([[0.0, 2.0]], [[1.0, -1.0]])
    fake = _out([[1.0, 0.5]], [[0.5, 2.0]])
    keep = torch.tensor([[1.0, 0.0]]).view(1, 1, 1, 2)
    out = discriminator_loss(real, fake, keep, mask_weight=0.1)
    gan = (_ce([0.0, 2.0], 1) + _ce([1.0, 0.5], 0)) / 2
    mask = (_bce(1.0, 1) + _bce(-1.0, 1) + _bce(0.5, 1) + _bce(2.0, 0)) / 4  # real cells are all "kept"
    assert out["gan"].item() == pytest.approx(gan, rel=1e-5)
    assert out["mask"].item() == pytest.approx(mask, rel=1e-5)
    assert out["loss"].item() == pytest.approx(gan + 0.1 * mask, rel=1e-5)


def test_repair_loss_by_hand_counts_only_kept_pixels():
    fake_out = _out([[0.3, -0.2]], [[0.0, 0.0]])
    keep = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)  # only the top-left cell kept
    images = torch.zeros(1, 3, 4, 4)
    fake = torch.full((1, 3, 4, 4), 9.0)  # huge error on dropped pixels: must not count
    fake[..., :2, :2] = 0.5  # error 0.25 on each kept pixel (the top-left 2x2 block)
    out = repair_loss(fake_out, fake, images, keep, gan_weight=1.0, recon_weight=30.0)
    assert out["gan"].item() == pytest.approx(_ce([0.3, -0.2], 1), rel=1e-5)
    assert out["recon"].item() == pytest.approx(0.25)
    assert out["loss"].item() == pytest.approx(_ce([0.3, -0.2], 1) + 30 * 0.25, rel=1e-5)


def _two_image_batch():
    """B = 2: two reconstructions and two repaired images, a 1x2 mask grid, 4x4 images."""
    real = _out([[0.0, 2.0], [1.5, -0.5]], [[1.0, -1.0], [0.2, 0.3]])
    fake = _out([[1.0, 0.5], [-0.3, 0.8]], [[0.5, 2.0], [-1.0, 0.4]])
    keep = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 1, 2)
    images = torch.zeros(2, 3, 4, 4)
    fake_images = torch.full((2, 3, 4, 4), 5.0)  # dropped pixels: must not count
    fake_images[0, :, :, :2] = 0.5  # image 0 keeps its left half: error 0.25 per kept pixel
    fake_images[1, :, :, 2:] = -1.0  # image 1 keeps its right half: error 1.0
    return real, fake, keep, images, fake_images


def test_official_repair_total_by_hand():
    """FIDELITY.md sect. 1: L_R = C's data terms + CE over 2B with flipped labels + 30 MSE over kept pixels x 3."""
    real, fake, keep, images, fake_images = _two_image_batch()
    c_losses = discriminator_loss(real, fake, keep, mask_weight=0.1)
    out = repair_objective("official", real, fake, c_losses, fake_images, images, keep, 1.0, 30.0)
    reals, fakes = [[0.0, 2.0], [1.5, -0.5]], [[1.0, 0.5], [-0.3, 0.8]]
    c_gan = (sum(_ce(r, 1) for r in reals) + sum(_ce(f, 0) for f in fakes)) / 4  # mean over 2B = 4
    c_mask = (sum(_bce(v, 1) for v in (1.0, -1.0, 0.2, 0.3))
              + _bce(0.5, 1) + _bce(2.0, 0) + _bce(-1.0, 0) + _bce(0.4, 1)) / 8  # mean over 2B x 2 cells
    flipped = (sum(_ce(r, 0) for r in reals) + sum(_ce(f, 1) for f in fakes)) / 4
    mse = (8 * 3 * 0.25 + 8 * 3 * 1.0) / (16 * 3)  # kept pixels: 8 per image, 3 channels
    assert out["gan"].item() == pytest.approx(flipped, rel=1e-6)
    assert out["recon"].item() == pytest.approx(mse, rel=1e-6)
    assert out["loss"].item() == pytest.approx(flipped + 30 * mse, rel=1e-6)  # R's own terms
    assert out["total"].item() == pytest.approx(c_gan + 0.1 * c_mask + flipped + 30 * mse, rel=1e-6)
    # per fake: (1/2B)[-log p_fake - log p_real]; per real the same, reaching R only through BatchNorm
    assert flipped_label_loss(real, fake).item() == pytest.approx(flipped, rel=1e-6)


def test_paper_and_paper_plus_c_totals_by_hand():
    real, fake, keep, images, fake_images = _two_image_batch()
    c_losses = discriminator_loss(real, fake, keep, mask_weight=0.1)
    paper_gan = (_ce([1.0, 0.5], 1) + _ce([-0.3, 0.8], 1)) / 2  # mean over the B fakes, labelled real
    mse = (8 * 3 * 0.25 + 8 * 3 * 1.0) / (16 * 3)
    paper = repair_objective("paper", real, fake, c_losses, fake_images, images, keep, 1.0, 30.0)
    plus_c = repair_objective("paper_plus_c", real, fake, c_losses, fake_images, images, keep, 1.0, 30.0)
    assert paper["total"].item() == pytest.approx(paper_gan + 30 * mse, rel=1e-6)
    assert plus_c["total"].item() == pytest.approx(paper_gan + 30 * mse + c_losses["loss"].item(), rel=1e-6)
    assert plus_c["loss"].item() == pytest.approx(paper["loss"].item())  # logged r_loss: R's own terms


def test_official_fake_half_has_its_minimum_at_one_half_and_paper_plus_c_at_two_thirds():
    """R's per-fake objective as a function of p_real: official (1/2B)[-log p - log(1-p)], minimum 0.5;
    paper_plus_c (1/2B)[-2 log p - log(1-p)] (the paper term is a mean over B, twice the weight), minimum 2/3."""
    probabilities = torch.linspace(0.01, 0.99, 981)
    logits = torch.stack([torch.zeros_like(probabilities), torch.log(probabilities / (1 - probabilities))], 1)
    no_real = DiscriminatorOutput(torch.zeros(0, 2), torch.zeros(0, 1, 1, 1))
    best = {}
    for mode in ("official", "paper_plus_c"):
        values = []
        for row in logits:
            fake = DiscriminatorOutput(row.view(1, 2), torch.zeros(1, 1, 1, 1))
            c_gan = torch.nn.functional.cross_entropy(row.view(1, 2), torch.tensor([0])) / 2  # fake->fake over 2B
            own = (flipped_label_loss(no_real, fake) / 2 if mode == "official"  # the mean over 2B, B = 1 fake
                   else torch.nn.functional.cross_entropy(row.view(1, 2), torch.tensor([1])))
            values.append(own + c_gan)
        best[mode] = probabilities[torch.stack(values).argmin()].item()
    assert best["official"] == pytest.approx(0.5, abs=0.002)
    assert best["paper_plus_c"] == pytest.approx(2 / 3, abs=0.002)


def test_unknown_repair_loss_is_refused():
    real, fake, keep, images, fake_images = _two_image_batch()
    with pytest.raises(ValueError, match="unknown repair_loss"):
        repair_objective("quirk", real, fake, discriminator_loss(real, fake, keep), fake_images, images, keep)


def test_metrics_against_hand_counts():
    real = _out([[0.0, 2.0], [3.0, 0.0]], [[1.0, 1.0], [1.0, -1.0]])  # one real right; 3 of 4 real cells "kept"
    fake = _out([[1.0, 0.5], [1.0, 0.5]], [[1.0, -1.0], [-1.0, -1.0]])
    keep = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(2, 1, 1, 2)
    m = {key: float(value) for key, value in discriminator_metrics(real, fake, keep).items()}
    assert m["real_acc"] == 0.5 and m["fake_acc"] == 1.0 and m["disc_acc"] == 0.75
    assert m["mask_acc_fake"] == 1.0
    assert m["mask_acc"] == pytest.approx(0.5 * (1.0 + 0.75))
    assert m["mask_chance_fake"] == 0.75  # "always dropped" on 1 kept, 3 dropped
    assert m["mask_chance"] == pytest.approx(0.5 * (1 + 0.25))
