"""Networks of the method: autoencoder (stage 1), damage and repair, discriminator (stage 2); RotNet (a yardstick)."""

from .autoencoder import AutoEncoder, Decoder, Encoder
from .damage import damage_features, sample_keep_mask, upsample_mask
from .discriminator import LAYERS, Discriminator, DiscriminatorOutput, Trunk, check_resolution
from .generator import ArtifactGenerator, GeneratedBatch
from .repair import RepairBlock, RepairNetwork, decode_with_repair
from .rotation_head import ROTATIONS, RotationHead, RotNet

__all__ = [
    "LAYERS",
    "ArtifactGenerator",
    "AutoEncoder",
    "Decoder",
    "Discriminator",
    "DiscriminatorOutput",
    "Encoder",
    "GeneratedBatch",
    "RepairBlock",
    "RepairNetwork",
    "ROTATIONS",
    "RotNet",
    "RotationHead",
    "Trunk",
    "check_resolution",
    "damage_features",
    "decode_with_repair",
    "sample_keep_mask",
    "upsample_mask",
]
