"""Networks of the method: autoencoder (stage 1), damage and repair, discriminator (stage 2)."""

from .autoencoder import AutoEncoder, Decoder, Encoder
from .damage import damage_features, sample_keep_mask, upsample_mask
from .discriminator import LAYERS, Discriminator, DiscriminatorOutput, Trunk, check_resolution
from .generator import ArtifactGenerator, GeneratedBatch
from .repair import RepairBlock, RepairNetwork, decode_with_repair

__all__ = [
    "AutoEncoder",
    "Decoder",
    "Encoder",
    "damage_features",
    "sample_keep_mask",
    "upsample_mask",
    "LAYERS",
    "Discriminator",
    "DiscriminatorOutput",
    "Trunk",
    "check_resolution",
    "ArtifactGenerator",
    "GeneratedBatch",
    "RepairBlock",
    "RepairNetwork",
    "decode_with_repair",
]
