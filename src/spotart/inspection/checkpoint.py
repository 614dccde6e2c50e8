"""Finding and loading the checkpoints that the inspection commands look at (stage 2; any trunk for export).

Every command accepts either a checkpoint file or a run directory, because users think in runs.
Models are rebuilt on the CPU in eval mode: inspection looks at a handful of images, and eval mode
makes every number here a pure function of the weights (no batch statistics, no dropout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models import Discriminator
from ..models.discriminator import architecture_options
from ..train.checkpoints import CheckpointError, describe_stage, load_checkpoint
from ..train.rundir import latest_checkpoint
from ..train.trunks import TRUNK_COMMANDS, TRUNK_STAGES


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` itself, or ``path/checkpoints/latest.pt`` when ``path`` is a run directory."""
    path = Path(path).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if not latest.is_file():
            raise CheckpointError(f"{path} is a folder but holds no checkpoints/latest.pt: pass a run directory "
                                  "or a checkpoint file")
        return latest
    return path


def load_spot_checkpoint(path: str | Path) -> dict[str, Any]:
    """The stage-2 payload of a checkpoint file or run directory (clear errors for anything else)."""
    return load_checkpoint(resolve_checkpoint(path), expect_stage="spot")


def load_trunk_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of any checkpoint that trained conv1..conv5 (train-spot, train-supervised, train-rotnet)."""
    path = resolve_checkpoint(path)
    payload = load_checkpoint(path)
    if payload["stage"] not in TRUNK_STAGES:
        raise CheckpointError(f"{path} is a {describe_stage(payload['stage'])} checkpoint; a {TRUNK_COMMANDS} "
                              "checkpoint is needed here")
    return payload


def discriminator_from(payload: dict[str, Any]) -> Discriminator:
    """The trained discriminator C of a stage-2 payload, on the CPU, in eval mode."""
    discriminator = Discriminator(int(payload["config"]["image_size"]), **architecture_options(payload["config"]))
    try:
        discriminator.load_state_dict(payload["discriminator"])
    except RuntimeError as err:  # a checkpoint from another version of the architecture
        raise CheckpointError(f"the discriminator in this checkpoint does not fit spotart's: {err}") from None
    return discriminator.eval()
