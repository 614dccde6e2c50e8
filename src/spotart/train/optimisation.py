"""Optimisation: the official Adam and learning-rate schedule, seeding, the step budget."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ..config import CommonConfig


def lr_factor(step: int, total_steps: int, decay_fraction: float = 0.9, final_factor: float = 0.01) -> float:
    """Official schedule: linear decay from 1 to ``final_factor`` over the first ``decay_fraction`` of the run."""
    decay_steps = max(1, int(total_steps * decay_fraction))
    progress = min(step, decay_steps) / decay_steps
    return 1.0 - (1.0 - final_factor) * progress


def make_adam(module: nn.Module, cfg: CommonConfig, lr_scale: float = 1.0) -> torch.optim.Adam:
    """Adam with the official settings; coupled L2 on conv/linear weights only (not BatchNorm, not biases)."""
    decay, no_decay = [], []
    for param in module.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim > 1 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel exists for CPU and CUDA tensors; on this project's CPU it makes the discriminator's Adam
    # step 7x faster than the default (0.25 s -> 0.04 s for 40M parameters).
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in decay + no_decay)
    return torch.optim.Adam(
        groups, lr=cfg.lr * lr_scale, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused or None
    )


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def total_steps(cfg: CommonConfig, batches_per_epoch: int) -> int:
    return cfg.steps if cfg.steps > 0 else cfg.epochs * batches_per_epoch
