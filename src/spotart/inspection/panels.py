"""The report's two image figures, computed from the trained networks on fixed images.

Both draw the keep mask from a generator seeded by the caller, so a report made twice from the same
checkpoint shows the same damage, and every column of the damage-and-repair panel shows the same
damage treated differently: decoded as it is, repaired, repaired without the mask, and twice through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..models import ArtifactGenerator, AutoEncoder, Discriminator


@dataclass(frozen=True)
class DamagePanels:
    inputs: torch.Tensor  # (N, 3, S, S)
    reconstruction: torch.Tensor  # D(E(x)): what C is shown as "real"
    keep_mask: torch.Tensor  # (N, 1, g, g) the fixed damage: 1 = kept
    damaged: torch.Tensor  # the damaged features decoded without repair
    repaired: torch.Tensor | None  # the trained repair network, output masked to dropped cells (the paper's model)
    unmasked: torch.Tensor | None  # the same weights, output not masked (ablation c's rule)
    twice: torch.Tensor | None  # damage and masked repair, then once more with a second mask (ablation d's rule)
    twice_keep_mask: torch.Tensor | None  # cells kept in both passes


@dataclass(frozen=True)
class MixedGrid:
    shown: torch.Tensor  # (N, 3, S, S): reconstructions and repaired images, mixed
    is_real: torch.Tensor  # (N,) bool: which of them are reconstructions
    true_keep: torch.Tensor  # (N, 1, g, g): all ones for a reconstruction
    predicted_keep: torch.Tensor  # (N, 1, g, g): C's probability that each cell was kept
    real_probability: torch.Tensor  # (N,): C's probability that the image is real


def artifact_generator(
    autoencoder: AutoEncoder, repair_state: dict[str, torch.Tensor] | None, repair: str, drop_rate: float,
    passes: int = 1,
) -> ArtifactGenerator:
    """A generator in eval mode whose repair network (when ``repair`` is not 'none') holds the trained weights.

    The masked/unmasked rule is not part of the weights, so one trained repair network can be run by either.
    """
    generator = ArtifactGenerator(autoencoder, repair=repair, drop_rate=drop_rate, passes=passes)
    if generator.repair is not None:
        generator.repair.load_state_dict(repair_state)
    return generator.eval()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def damage_and_repair(
    autoencoder: AutoEncoder, repair_state: dict[str, torch.Tensor] | None, drop_rate: float, images: torch.Tensor,
    seed: int,
) -> DamagePanels:
    """Every column for ``images``; the repair columns are None for a run without a repair network."""
    if repair_state is None:
        plain = artifact_generator(autoencoder, None, "none", drop_rate)(images, seeded(seed), with_damaged=True)
        return DamagePanels(images, plain.real, plain.keep_mask, plain.damaged, None, None, None, None)

    def run(repair: str, passes: int = 1, with_damaged: bool = False):
        generator = artifact_generator(autoencoder, repair_state, repair, drop_rate, passes)
        return generator(images, seeded(seed), with_damaged=with_damaged)

    # the same seed draws the same first mask in every call: each column repairs exactly the damage shown
    full, twice = run("masked", with_damaged=True), run("masked", passes=2)
    return DamagePanels(images, full.real, full.keep_mask, full.damaged, full.fake, run("unmasked").fake,
                        twice.fake, twice.keep_mask)


@torch.no_grad()
def real_or_repaired(
    autoencoder: AutoEncoder, repair_state: dict[str, torch.Tensor] | None, discriminator: Discriminator,
    config: dict[str, Any], images: torch.Tensor, seed: int,
) -> MixedGrid:
    """Half reconstructions, half repaired images (the run's own repair setting), in a fixed shuffled order."""
    generator = artifact_generator(autoencoder, repair_state, config["repair"], config["drop_rate"], config["passes"])
    batch = generator(images, seeded(seed))
    count = images.shape[0]
    is_real = torch.zeros(count, dtype=torch.bool)
    is_real[torch.randperm(count, generator=seeded(seed))[: count // 2]] = True
    shown = torch.where(is_real[:, None, None, None], batch.real, batch.fake)
    true_keep = torch.where(is_real[:, None, None, None], torch.ones_like(batch.keep_mask), batch.keep_mask)
    out = discriminator.eval()(shown)
    return MixedGrid(shown, is_real, true_keep, torch.sigmoid(out.mask_logits.float()),
                     torch.softmax(out.class_logits.float(), dim=1)[:, 1])
