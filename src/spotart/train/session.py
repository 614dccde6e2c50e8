"""Setting up a training run: distributed init, device, run directory, data, and resume."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import CommonConfig
from ..data import SeededSampler, training_loader
from . import distributed as dist_utils
from .runtime import (
    CheckpointError,
    CheckpointManager,
    RunDir,
    Runtime,
    load_checkpoint,
    seed_everything,
    total_steps,
)

log = logging.getLogger("spotart")


@dataclass
class Session:
    cfg: CommonConfig
    command: str
    runtime: Runtime
    run: RunDir
    checkpoints: CheckpointManager
    loader: Any
    sampler: SeededSampler
    total_steps: int
    start_step: int = 0
    resumed: dict[str, Any] | None = None  # the checkpoint a resumed run starts from
    skipped_images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch


def start_session(cfg: CommonConfig, out: str, command: str, stage: str, resume: bool) -> Session:
    """Everything a stage loop needs before its first step; ``stage`` names the checkpoint kind it writes."""
    dist_utils.init_from_env()
    runtime = Runtime.from_config(cfg)
    seed_everything(cfg.seed)  # same on every rank: the models start identical
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    run = RunDir(out)
    manager = CheckpointManager(run, cfg.keep_checkpoints)
    resumed = None
    if resume:
        if not manager.latest.exists():
            raise CheckpointError(f"--resume: no checkpoint at {manager.latest} to resume from")
        resumed = load_checkpoint(manager.latest, expect_stage=stage)
        saved_size = resumed["config"]["image_size"]
        if saved_size != cfg.image_size:
            raise CheckpointError(
                f"--resume: the run in {run.root} was trained at {saved_size} px, not {cfg.image_size} px"
            )
    elif manager.latest.exists():
        raise CheckpointError(
            f"{run.root} already holds a run ({manager.latest}): pass --resume to continue it, or choose another --out"
        )
    loader, sampler, source = training_loader(
        cfg, dist_utils.rank(), dist_utils.world_size(), pin_memory=runtime.device.type == "cuda"
    )
    total = total_steps(cfg, sampler.batches_per_epoch)
    start = int(resumed["step"]) if resumed else 0
    if resumed:
        run.truncate_metrics(start)
    run.write_config(cfg, command)
    log.info("%s: %d images from %s, %d steps of batch %d x %d rank(s) (%d steps per epoch), %s",
             command, len(source), cfg.data, total, cfg.batch_size, dist_utils.world_size(),
             sampler.batches_per_epoch, runtime.describe())
    if resumed:
        log.info("resuming from %s at step %d", manager.latest, start)
    return Session(cfg, command, runtime, run, manager, loader, sampler, total, start, resumed)


def count_parameters(module: torch.nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def report_skipped(session: Session, batch: dict) -> None:
    """Log unreadable images by name (the first 20) and keep a running count for metrics.jsonl."""
    for reason in batch["skipped"]:
        session.skipped_images += 1
        if session.skipped_images <= 20:
            log.warning("skipped unreadable image %s", reason)
        elif session.skipped_images == 21:
            log.warning("more unreadable images: counted in metrics.jsonl as skipped_images, not logged one by one")


def check_ranks_in_sync(modules: list[torch.nn.Module], device: torch.device, step: int) -> None:
    """Before each checkpoint under torchrun: every rank must hold the same weights (rank 0's are saved)."""
    if not dist_utils.is_distributed():
        return
    if not dist_utils.weights_in_sync(modules, device):
        raise RuntimeError(f"step {step}: the ranks' weights differ; gradients were not averaged consistently")
    log.info("step %d: weights identical on all %d ranks", step, dist_utils.world_size())
