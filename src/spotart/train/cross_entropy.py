"""One guarded cross-entropy step: what the RotNet yardstick and the supervised classifiers share."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as dist_utils
from .device import Runtime
from .nonfinite import UNGUARDED, NonFiniteGuard


def cross_entropy_step(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                       labels: torch.Tensor, optimizer: torch.optim.Optimizer, runtime: Runtime,
                       guard: NonFiniteGuard = UNGUARDED, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of ``forward(inputs)`` (``model`` itself, or compiled) against ``labels``, one optimiser step
    under the NaN guard; returns the loss and the logits, detached. ``model`` is what the guard protects and whose
    gradients are averaged across processes."""
    with guard.step(step, model) as verdict:  # BatchNorm statistics saved, put back if the step is skipped
        with runtime.autocast():
            logits = forward(inputs)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if verdict.admit({"loss": loss}):
            loss.backward()
            dist_utils.average_gradients([p for p in model.parameters() if p.requires_grad])
            verdict.update(optimizer)
    return loss.detach(), logits.detach()
