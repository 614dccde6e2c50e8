"""The artifact generator of stage 2: frozen autoencoder, damage and the repair network.

One pass of the frozen encoder gives both the clean features phi (to damage) and, through the frozen
decoder, the reconstruction D(E(x)) that C sees as "real": C cannot win on autoencoder blur.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .autoencoder import AutoEncoder
from .damage import damage_features, sample_keep_mask
from .repair import RepairNetwork, decode_with_repair


class GeneratedBatch(NamedTuple):
    real: torch.Tensor  # (B, 3, H, W) the frozen autoencoder's reconstructions D(E(x))
    fake: torch.Tensor  # (B, 3, H, W) the repaired decodings of the damaged features
    keep_mask: torch.Tensor  # (B, 1, g, g) 1 where a cell was kept in every pass
    damaged: torch.Tensor | None  # (B, 3, H, W) the damage decoded without repair, when asked for


class ArtifactGenerator(nn.Module):
    def __init__(
        self,
        autoencoder: AutoEncoder,
        repair: str = "masked",
        drop_rate: float = 0.7,
        passes: int = 1,
        repair_init: str = "identity",
    ) -> None:
        super().__init__()
        if repair not in ("masked", "unmasked", "none"):
            raise ValueError(f"repair must be 'masked', 'unmasked' or 'none', got {repair!r}")
        if passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, got {passes}")
        self.autoencoder = autoencoder
        self.autoencoder.requires_grad_(False).eval()
        self.repair = None if repair == "none" else RepairNetwork(masked=repair == "masked", init=repair_init)
        self.drop_rate = drop_rate
        self.passes = passes

    def train(self, mode: bool = True) -> ArtifactGenerator:
        super().train(mode)
        self.autoencoder.eval()  # frozen: BatchNorm in inference mode, running statistics never updated
        return self

    def _damage_and_repair(
        self, phi: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keep_mask = sample_keep_mask(
            phi.shape[0], phi.shape[-1], self.drop_rate, device=phi.device, generator=generator, dtype=phi.dtype
        )
        phi_hat = damage_features(phi, keep_mask)
        return decode_with_repair(self.autoencoder.decoder, self.repair, phi_hat, keep_mask), keep_mask, phi_hat

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None, with_damaged: bool = False
    ) -> GeneratedBatch:
        encoder, decoder = self.autoencoder.encoder, self.autoencoder.decoder
        with torch.no_grad():
            phi = encoder(images)  # (B, 512, g, g)
            real = decoder(phi)
        fake, keep_mask, phi_hat = self._damage_and_repair(phi, generator)
        damaged = None
        if with_damaged:
            with torch.no_grad():
                damaged = decode_with_repair(decoder, None, phi_hat, keep_mask)
        if self.passes == 2:
            # Ablation (d): the repaired image goes through the frozen encoder, damage and repair once more.
            fake, second_keep, _ = self._damage_and_repair(encoder(fake), generator)
            keep_mask = keep_mask * second_keep
        return GeneratedBatch(real, fake, keep_mask, damaged)
