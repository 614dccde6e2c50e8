"""An image classifier on the discriminator's trunk: what fine-tuning and the supervised baseline both train.

The head mirrors the discriminator's own class head (fc 4096 + BN + ReLU + dropout 0.5, then a linear layer to the
classes), so the supervised upper bound and the fine-tuned model differ from the self-supervised one only in what
their trunk was trained on. ``hidden=0`` gives a single linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Trunk
from ..models.discriminator import conv5_grid
from ..train.cross_entropy import cross_entropy_step
from ..train.device import Runtime
from ..train.nonfinite import UNGUARDED, NonFiniteGuard
from .datasets import to_model_range


def mlp_head(in_features: int, num_classes: int, hidden: int = 4096) -> nn.Sequential:
    if hidden <= 0:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden, bias=False),
        nn.BatchNorm1d(hidden, eps=1e-3, momentum=0.025),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


class TrunkClassifier(nn.Module):
    """conv1..conv5 of ``trunk`` followed by ``mlp_head`` on the flattened conv5 map."""

    def __init__(self, trunk: Trunk, image_size: int, num_classes: int, hidden: int = 4096) -> None:
        super().__init__()
        grid = conv5_grid(image_size)
        self.trunk = trunk
        self.head = mlp_head(256 * grid * grid, num_classes, hidden)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))


def classifier_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                    runtime: Runtime, guard: NonFiniteGuard = UNGUARDED, step: int = 0) -> dict[str, torch.Tensor]:
    """One cross-entropy step; returns the loss and the batch accuracy (a fraction, as training metrics are) as
    0-d tensors on the device, so that nothing in a step waits for it (callers read them back when they log)."""
    loss, logits = cross_entropy_step(model, model, images, labels, optimizer, runtime, guard, step)
    return {"loss": loss, "acc": (logits.argmax(1) == labels).float().mean()}


@torch.no_grad()
def evaluate_top1(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
                  batch_size: int = 256) -> float:
    """Top-1 in percent on uint8 images from ``datasets.decode_images``; the model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(images), batch_size):
            batch = runtime.to_device(to_model_range(images[start : start + batch_size]))
            with runtime.autocast():
                logits = model(batch)
            correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return 100.0 * correct / max(1, len(images))
