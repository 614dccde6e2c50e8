"""Losses of both stages as pure functions returning a dict with a ``loss`` entry and its named parts.

The L2 weight penalty of every stage is applied by the optimiser as coupled weight decay, which
gives exactly the gradient of TF's ``5e-5 * l2_loss(w)``; it is therefore not part of these values.
All inputs are cast to float32 so that losses are computed in full precision under bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models.damage import upsample_mask
from .models.discriminator import DiscriminatorOutput

REAL, FAKE = 1, 0


def autoencoder_loss(recon: torch.Tensor, images: torch.Tensor, recon_weight: float = 30.0) -> dict[str, torch.Tensor]:
    """Stage 1 (paper): ``recon_weight * MSE(D(E(x)), x)``."""
    mse = F.mse_loss(recon.float(), images.float())
    return {"loss": recon_weight * mse, "mse": mse}


def _labels(batch: int, value: int, device: torch.device) -> torch.Tensor:
    return torch.full((batch,), value, dtype=torch.long, device=device)


def discriminator_loss(
    real_out: DiscriminatorOutput,
    fake_out: DiscriminatorOutput,
    keep_mask: torch.Tensor,
    mask_weight: float = 0.1,
) -> dict[str, torch.Tensor]:
    """C (paper): cross-entropy real(1)/fake(0) + ``mask_weight`` * per-cell BCE of the mask head.

    The mask target is the keep mask for repaired images and all ones for real ones; both terms are means
    over the 2B images (and their cells).
    """
    class_logits = torch.cat([real_out.class_logits, fake_out.class_logits]).float()
    batch = real_out.class_logits.shape[0]
    targets = _real_then_fake_labels(batch, fake_out.class_logits.shape[0], class_logits.device)
    gan = F.cross_entropy(class_logits, targets)
    mask_logits = torch.cat([real_out.mask_logits, fake_out.mask_logits]).float()
    mask_target = torch.cat([torch.ones_like(real_out.mask_logits, dtype=torch.float32), keep_mask.float()])
    mask = F.binary_cross_entropy_with_logits(mask_logits, mask_target)
    return {"loss": gan + mask_weight * mask, "gan": gan, "mask": mask}


def _real_then_fake_labels(real: int, fake: int, device: torch.device, flipped: bool = False) -> torch.Tensor:
    """Class targets of a [real; fake] batch: REAL then FAKE, or the other way round when ``flipped``."""
    first, second = (FAKE, REAL) if flipped else (REAL, FAKE)
    return torch.cat([_labels(real, first, device), _labels(fake, second, device)])


def repair_loss(
    fake_out: DiscriminatorOutput,
    fake: torch.Tensor,
    images: torch.Tensor,
    keep_mask: torch.Tensor,
    gan_weight: float = 1.0,
    recon_weight: float = 30.0,
) -> dict[str, torch.Tensor]:
    """R (paper): non-saturating GAN loss (repaired images labelled real) + ``recon_weight`` * MSE to x on
    kept pixels only (the keep mask upsampled to the image), averaged over the kept pixels."""
    logits = fake_out.class_logits.float()
    gan = F.cross_entropy(logits, _labels(logits.shape[0], REAL, logits.device))
    keep_pixels = upsample_mask(keep_mask.float(), fake.shape[-1])  # (B, 1, H, W)
    squared = (fake.float() - images.float()).pow(2) * keep_pixels
    kept = keep_pixels.sum() * fake.shape[1]
    recon = squared.sum() / kept.clamp(min=1.0)
    return {"loss": gan_weight * gan + recon_weight * recon, "gan": gan, "recon": recon}


def flipped_label_loss(real_out: DiscriminatorOutput, fake_out: DiscriminatorOutput) -> torch.Tensor:
    """The official code's adversarial term of R (``SpotNet.py:127`` ``labels_fake()``): the cross-entropy of all 2B
    images with their labels flipped (fakes labelled real, reconstructions labelled fake), a mean over 2B.

    Each fake weighs 1/(2B), half what the paper loss gives it; the real half reaches R only through C's
    train-mode BatchNorm, whose batch statistics are taken over [real; fake] together."""
    class_logits = torch.cat([real_out.class_logits, fake_out.class_logits]).float()
    flipped = _real_then_fake_labels(real_out.class_logits.shape[0], fake_out.class_logits.shape[0],
                                     class_logits.device, flipped=True)
    return F.cross_entropy(class_logits, flipped)


def repair_objective(
    mode: str,
    real_out: DiscriminatorOutput,
    fake_out: DiscriminatorOutput,
    c_losses: dict[str, torch.Tensor],
    fake: torch.Tensor,
    images: torch.Tensor,
    keep_mask: torch.Tensor,
    gan_weight: float = 1.0,
    recon_weight: float = 30.0,
) -> dict[str, torch.Tensor]:
    """R's loss in one of three formulations (config key ``repair_loss``; FIDELITY.md sect. 1).

    ``loss`` holds R's own terms (``gan_weight * gan + recon_weight * recon``) and ``total`` what R's gradient is
    taken of:

    - ``paper``: the non-saturating loss on the B fakes; ``total = loss``;
    - ``paper_plus_c``: the same plus C's loss (``total = loss + c_loss``), what ``official_loss_quirk=true`` did;
      with ``gan_weight=1`` R's equilibrium is at p_real = 2/3;
    - ``official``: the official total (``SpotNet.py:127-135``, which collects every loss of the tower so far, C's
      included): ``gan`` is the flipped-label cross-entropy over all 2B images and ``total = loss + c_loss``, i.e.
      ``c_loss + 0.5 CE_B(fake->real) + 0.5 CE_B(real->fake) + 30 MSE``; R's equilibrium is at p_real = 0.5.
    """
    paper = repair_loss(fake_out, fake, images, keep_mask, gan_weight, recon_weight)
    if mode == "paper":
        return {**paper, "total": paper["loss"]}
    if mode == "paper_plus_c":
        return {**paper, "total": paper["loss"] + c_losses["loss"]}
    if mode == "official":
        gan = flipped_label_loss(real_out, fake_out)
        own = gan_weight * gan + recon_weight * paper["recon"]
        return {"loss": own, "gan": gan, "recon": paper["recon"], "total": own + c_losses["loss"]}
    raise ValueError(f"unknown repair_loss {mode!r}: use paper, paper_plus_c or official")


@torch.no_grad()
def discriminator_metrics(
    real_out: DiscriminatorOutput, fake_out: DiscriminatorOutput, keep_mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Accuracies of C, with the chance levels to read them against, as 0-d tensors on C's device.

    They stay tensors so that a training step never waits for the GPU to read them; ``MetricAverager`` sums them
    on the device and converts to Python numbers once per logged row.

    ``mask_acc_fake`` is the per-cell accuracy on repaired images; ``mask_chance_fake`` is the better constant
    guess on them (all kept or all dropped). ``mask_acc`` covers real and repaired cells together; its chance,
    ``mask_chance``, is the "always kept" guess (0.65 at drop rate 0.7).
    """
    real_acc = (real_out.class_logits.argmax(1) == REAL).float().mean()
    fake_acc = (fake_out.class_logits.argmax(1) == FAKE).float().mean()
    keep = keep_mask.float()
    fake_pred = (fake_out.mask_logits.float() > 0).float()
    real_pred = (real_out.mask_logits.float() > 0).float()
    mask_acc_fake = (fake_pred == keep).float().mean()
    mask_acc = 0.5 * (mask_acc_fake + real_pred.mean())
    kept_fraction = keep.mean()
    return {
        "real_acc": real_acc,
        "fake_acc": fake_acc,
        "disc_acc": 0.5 * (real_acc + fake_acc),
        "mask_acc": mask_acc,
        "mask_chance": 0.5 * (1.0 + kept_fraction),
        "mask_acc_fake": mask_acc_fake,
        "mask_chance_fake": torch.maximum(kept_fraction, 1 - kept_fraction),
    }
