"""The conv1..conv5 trunk inside any checkpoint that trained one, for the commands that read trunks.

``train-spot`` and ``train-supervised`` save a whole ``Discriminator`` state dict (``"discriminator"``);
``train-rotnet`` saves the trunk alone (``"trunk"``), since the discriminator's heads would be untrained weights (37M
parameters at 96 px) in every checkpoint.
"""

from __future__ import annotations

from typing import Any

from ..models import Discriminator, Trunk
from ..models.discriminator import architecture_options
from .checkpoints import CheckpointError, describe_stage

TRUNK_STAGES = ("spot", "supervised", "rotnet")  # checkpoint kinds whose trunk probe, finetune, export and VOC read
TRUNK_COMMANDS = "train-spot, train-supervised or train-rotnet"


def trunk_from_payload(payload: dict[str, Any], source: str) -> Trunk:
    """The trained trunk of a loaded checkpoint (on the CPU, in train mode: callers set the mode they need)."""
    stage = payload["stage"]
    if stage not in TRUNK_STAGES:
        raise CheckpointError(f"{source} is a {describe_stage(stage)} checkpoint; a {TRUNK_COMMANDS} checkpoint "
                              "(a trained conv1..conv5) is needed here")
    try:
        options = architecture_options(payload["config"])  # padding (and fc_1's BatchNorm) as the run trained it
        if stage == "rotnet":
            trunk = Trunk(options["padding"])
            trunk.load_state_dict(payload["trunk"])
            return trunk
        discriminator = Discriminator(int(payload["config"]["image_size"]), **options)
        discriminator.load_state_dict(payload["discriminator"])
    except (RuntimeError, KeyError) as err:  # another version of the architecture, or a hand-made payload
        raise CheckpointError(f"{source}: its weights do not fit spotart's trunk ({type(err).__name__}: "
                              f"{str(err).splitlines()[0]})") from None
    return discriminator.trunk
