"""Stage 1: train the autoencoder (E, D) to reconstruct images (``spotart train-ae``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import make_grid

from ..config import AEConfig, config_to_dict
from ..losses import autoencoder_loss
from ..models import AutoEncoder
from . import distributed as dist_utils
from .runtime import (
    CHECKPOINT_FORMAT,
    NonFiniteGuard,
    Runtime,
    Throughput,
    batches,
    lr_factor,
    make_adam,
    maybe_compile,
    progress_bar,
    rng_state,
    set_lr,
    set_rng_state,
)
from .session import check_ranks_in_sync, count_parameters, report_skipped, start_session

log = logging.getLogger("spotart")


def autoencoder_step(
    model: AutoEncoder | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, optimizer: torch.optim.Optimizer, runtime: Runtime,
    recon_weight: float, guard: NonFiniteGuard | None = None, step: int = 0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step; returns the losses and the reconstructions."""
    with runtime.autocast():
        recon = model(images)
    losses = autoencoder_loss(recon, images, recon_weight)
    optimizer.zero_grad(set_to_none=True)
    if guard is not None and not guard.ok(step, losses):
        return losses, recon.detach()
    losses["loss"].backward()
    dist_utils.average_gradients(list(model.parameters()))
    optimizer.step()
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


def train_autoencoder(cfg: AEConfig, out: str, resume: bool = False) -> Path:
    session = start_session(cfg, out, "train-ae", stage="autoencoder", resume=resume)
    runtime, run = session.runtime, session.run
    model = dist_utils.convert_batchnorm(AutoEncoder(), cfg.sync_batchnorm, runtime.device)
    model = model.to(runtime.device, memory_format=runtime.memory_format)
    dist_utils.broadcast_module(model)
    optimizer = make_adam(model, cfg)
    forward = maybe_compile(model, cfg.compile)  # shares parameters with `model`, which is what gets saved
    if session.resumed:
        model.load_state_dict(session.resumed["model"])
        optimizer.load_state_dict(session.resumed["optimizer"])
        set_rng_state(session.resumed["rng"])
    else:
        torch.manual_seed(cfg.seed + dist_utils.rank())
    log.info("autoencoder: %.2fM parameters", count_parameters(model) / 1e6)

    guard, speed = NonFiniteGuard(), Throughput()
    sums: dict[str, float] = {}
    counted = 0
    step = session.start_step
    bar = progress_bar(session.total_steps, step, cfg.progress and run.enabled, "train-ae")
    data = batches(session.loader, session.sampler, step, session.steps_per_epoch)
    model.train()
    try:
        while step < session.total_steps:
            epoch, batch = next(data)
            report_skipped(session, batch)
            if batch["images"].numel() == 0:
                continue
            images = runtime.to_device(batch["images"])
            factor = lr_factor(step, session.total_steps, cfg.lr_decay_fraction, cfg.lr_final_factor)
            set_lr(optimizer, cfg.lr, factor)
            losses, recon = autoencoder_step(forward, images, optimizer, runtime, cfg.recon_weight, guard, step)
            step += 1
            speed.add(images.shape[0] * dist_utils.world_size())
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            counted += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == session.total_steps:
                row = {"step": step, "epoch": epoch, **{k: v / counted for k, v in sums.items()},
                       "images_per_s": speed.rate(), "lr": cfg.lr * factor,
                       "skipped_images": session.skipped_images, "skipped_steps": guard.total}
                row = dist_utils.mean_over_ranks(row, runtime.device)
                run.log_metrics(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.1f}")
                sums, counted = {}, 0
            if step % cfg.image_every == 0 or step == session.total_steps:
                run.save_grid("reconstruction", step, reconstruction_grid(images, recon))
            if step % cfg.checkpoint_every == 0 or step == session.total_steps:
                check_ranks_in_sync([model], runtime.device, step)
                session.checkpoints.save(checkpoint_payload(model, optimizer, cfg, step), step, periodic=True)
    finally:
        bar.close()
        run.close()
    log.info("stage 1 done: %s", session.checkpoints.latest)
    return session.checkpoints.latest

