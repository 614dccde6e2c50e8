"""Stage 1: train the autoencoder (E, D) to reconstruct images (``spotart train-ae``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..config import AEConfig, config_to_dict
from ..losses import autoencoder_loss
from ..models import AutoEncoder
from ..models.gemm_conv import use_gemm_weight_grads
from . import distributed as dist_utils
from .checkpoints import CHECKPOINT_FORMAT, rng_state, set_rng_state
from .device import Runtime, maybe_compile
from .nonfinite import UNGUARDED, NonFiniteGuard
from .optimisation import make_adam, scale_bias_grads, use_tf_adam_epsilon
from .session import Stage, count_parameters, run_loop, start_session

log = logging.getLogger("spotart")


def autoencoder_step(
    model: AutoEncoder | Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    recon_weight: float,
    guard: NonFiniteGuard = UNGUARDED,
    step: int = 0,
    cfg: AEConfig | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step; returns the losses and the reconstructions. ``cfg`` (with ``model`` the AutoEncoder
    module itself) adds the official optimiser details it asks for (bias-gradient factor, TF's epsilon)."""
    with guard.step(step, model) as verdict:  # BatchNorm statistics saved, put back if the step is skipped
        with runtime.autocast():
            recon = model(images)
        losses = autoencoder_loss(recon, images, recon_weight)
        optimizer.zero_grad(set_to_none=True)
        # on CUDA the verdict stays on the device (no sync in a step): verdict.update drops a bad update there
        if verdict.admit(losses):
            losses["loss"].backward()
            dist_utils.average_gradients(list(model.parameters()))
            if cfg is not None:
                if isinstance(model, torch.nn.Module):
                    scale_bias_grads(model, cfg.bias_grad_factor)
                if cfg.tf_adam_epsilon:
                    use_tf_adam_epsilon(optimizer, cfg.adam_eps)
            verdict.update(optimizer)
    return losses, recon.detach()


def reconstruction_grid(images: torch.Tensor, recon: torch.Tensor, count: int = 8) -> torch.Tensor:
    """Top row inputs, bottom row reconstructions, in [0, 1]."""
    count = min(count, images.shape[0])
    rows = torch.cat([images[:count].float().cpu(), recon[:count].float().cpu()])
    return make_grid(rows.add(1).div(2).clamp(0, 1), nrow=count, padding=2)


def checkpoint_payload(model, optimizer, cfg: AEConfig, step: int) -> dict:
    return {
        "stage": "autoencoder",
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": config_to_dict(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
    }


def new_autoencoder(cfg: AEConfig) -> AutoEncoder:
    """The untrained autoencoder that ``cfg`` trains: its init scheme and decoder upsampling."""
    return AutoEncoder(init=cfg.ae_init, upsampling=cfg.decoder_upsampling)


def train_autoencoder(cfg: AEConfig, out: str, resume: bool = False) -> Path:
    session = start_session(cfg, out, "train-ae", stage="autoencoder", resume=resume)
    runtime = session.runtime
    model = new_autoencoder(cfg)
    model = dist_utils.convert_batchnorm(model, cfg.sync_batchnorm, runtime.device)
    model = model.to(runtime.device, memory_format=runtime.memory_format)
    if runtime.gemm_weight_grads:
        use_gemm_weight_grads(model)
    dist_utils.broadcast_module(model)
    # officially D5's bias carries the L2 penalty too (AutoEncoder.py:25 biases_regularizer)
    optimizer = make_adam(model, cfg, decay_also=(model.decoder.to_rgb.bias,) if cfg.decay_output_bias else (),
                          decay_also_factor=cfg.bias_grad_factor)  # TF doubles D5's bias gradient with its L2 term
    forward = maybe_compile(model, cfg.compile)  # shares parameters with `model`, which is what gets saved
    if session.resumed:
        model.load_state_dict(session.resumed["model"])
        optimizer.load_state_dict(session.resumed["optimizer"])
        set_rng_state(session.resumed["rng"])
    else:
        torch.manual_seed(cfg.seed + dist_utils.rank())
    log.info("autoencoder: %.2fM parameters", count_parameters(model) / 1e6)
    guard = NonFiniteGuard.for_device(runtime.device)

    def step(images: torch.Tensor, labels: torch.Tensor, index: int) -> tuple[dict, torch.Tensor]:
        losses, recon = autoencoder_step(forward, images, optimizer, runtime, cfg.recon_weight, guard, index, cfg)
        return losses, recon

    model.train()
    stage = Stage(
        name="train-ae",
        step=step,
        optimizers=[(optimizer, cfg.lr)],
        payload=lambda index: checkpoint_payload(model, optimizer, cfg, index),
        sync_modules=[model],
        grid=reconstruction_grid,
        grid_name="reconstruction",
    )
    return run_loop(session, stage, guard)
