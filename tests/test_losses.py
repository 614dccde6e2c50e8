"""Each loss against a value computed by hand on a tiny input."""

import math

import pytest
import torch

from spotart.losses import autoencoder_loss, discriminator_loss, discriminator_metrics, repair_loss
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
