"""Checkpoints of each kind, written directly (no training): what the evaluation code loads."""

from __future__ import annotations

from pathlib import Path

import torch

from spotart.models import AutoEncoder, Discriminator, RotNet
from spotart.train.checkpoints import save_checkpoint


def write_checkpoint(path: Path, stage: str, image_size: int = 32, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    payload = {"stage": stage, "format": 1, "step": 1, "config": {"image_size": image_size}}
    if stage == "autoencoder":
        payload["model"] = AutoEncoder().state_dict()
    elif stage == "rotnet":  # train-rotnet saves its trunk and head apart
        model = RotNet(image_size, hidden=16)
        payload["trunk"], payload["head"] = model.trunk.state_dict(), model.head.state_dict()
    else:
        payload["discriminator"] = Discriminator(image_size).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, payload)
    return path
