"""Setting up a training run: distributed init, device, run directory, data, and resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import CommonConfig
from ..data import SeededSampler, training_loader
from ..data.augment_device import DeviceAugment
from . import distributed as dist_utils
from .best_knn import BestKnn
from .checkpoints import CheckpointError, CheckpointManager, load_checkpoint
from .device import Runtime, configure_backends
from .nonfinite import NonFiniteGuard
from .optimisation import lr_factor, seed_everything, set_lr, total_steps
from .progress import RunClock, Throughput, batches, progress_bar
from .rundir import RunDir

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

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch


def start_session(cfg: CommonConfig, out: str, command: str, stage: str, resume: bool) -> Session:
    """Everything a stage loop needs before its first step; ``stage`` names the checkpoint kind it writes."""
    dist_utils.init_from_env()
    runtime = Runtime.from_config(cfg)
    configure_backends(runtime.device, cfg.deterministic)
    seed_everything(cfg.seed)  # same on every rank: the models start identical
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    run = RunDir(out)
    manager = CheckpointManager(run, cfg.keep_checkpoints, cfg.snapshot_optimizer)
    resumed = None
    if resume:
        if not manager.latest.exists():
            raise CheckpointError(f"--resume: no checkpoint at {manager.latest} to resume from")
        resumed = load_checkpoint(manager.latest, expect_stage=stage, for_resume=True)
        saved_size = resumed["config"]["image_size"]
        if saved_size != cfg.image_size:
            raise CheckpointError(
                f"--resume: the run in {run.root} was trained at {saved_size} px, not {cfg.image_size} px"
            )
        check_network_keys(cfg, resumed["config"], run.root)
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


# Keys that decide what a network computes from the same parameters. A resumed run that changed one would go on
# training another network from the same weights, without an error from load_state_dict to say so.
NETWORK_KEYS = ("decoder_upsampling", "disc_padding", "fc1_bn_scale", "repair", "passes")


def check_network_keys(cfg: CommonConfig, saved: dict[str, Any], root: Path) -> None:
    """Refuse to resume with another value of a :data:`NETWORK_KEYS` key than the checkpoint's. A checkpoint
    written before a key existed was trained with that key's default (e.g. ``decoder_upsampling: half_pixel``)."""
    defaults = type(cfg)()
    trained = {key: saved.get(key, getattr(defaults, key)) for key in NETWORK_KEYS if hasattr(cfg, key)}
    changed = {key: value for key, value in trained.items() if value != getattr(cfg, key)}
    if changed:
        told = ", ".join(f"{key}={_text(value)} (asked: {_text(getattr(cfg, key))})" for key, value in changed.items())
        keep = " ".join(f"--set {key}={_text(value)}" for key, value in changed.items())
        raise CheckpointError(f"--resume: the run in {root} was trained with {told}: resume with {keep}, "
                              "or start a new run (another --out) to train the other network")


def _text(value: Any) -> str:
    """A config value as ``--set`` takes it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


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


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class Stage:
    """What a training stage plugs into ``run_loop``: its step, and how to schedule, show and save it."""

    name: str  # progress-bar label, e.g. "train-spot"
    step: Callable[[torch.Tensor, torch.Tensor, int], tuple[dict[str, Any], Any]]  # (images, labels, step)
    optimizers: list[tuple[torch.optim.Optimizer, float]]  # each with its base learning rate
    payload: Callable[[int], dict[str, Any]]  # the checkpoint at a step
    sync_modules: list[torch.nn.Module]  # compared across ranks before each checkpoint
    grid: Callable[[torch.Tensor, Any], torch.Tensor] | None = None  # (images, step output) -> (3, H, W) in [0, 1]
    grid_name: str = "images"
    postfix: dict[str, str] = field(default_factory=lambda: {"loss": "loss"})  # progress label -> metric key
    after_step: Callable[[int], dict[str, float]] | None = None  # extra metrics at some steps (kNN), step 0 too
    min_batch: int = 1  # smaller batches (all but a few images unreadable) are skipped
    max_seconds: float = 0.0  # time budget: stop at a checkpoint once wall_s reaches it (0: the step budget alone)


class MetricAverager:
    """Means of every metric since the last ``means()`` call (logged rows describe an interval, not one step).

    Tensor values are summed where they are (on the GPU, without waiting for it) and read back once, in
    ``means()``: a ``float()`` per metric per step would make every step wait for the device to finish.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        out = {k: float(self.sums[k]) / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


def log_extra(run: RunDir, step: int, epoch: int, extra: dict[str, float], wall_s: float) -> None:
    """A row of ``after_step`` metrics (the kNN monitor's), in metrics.jsonl and the log."""
    run.log_metrics({"step": step, "epoch": epoch, **extra, "wall_s": round(wall_s, 3)})
    log.info("step %d: %s", step, ", ".join(f"{key} {value:.4g}" for key, value in extra.items()))


def batch_images(batch: dict[str, Any], runtime: Runtime, augment: DeviceAugment | None, step: int) -> torch.Tensor:
    """The batch's images on the device, in the run's layout; under ``gpu_augment`` the loader's uint8 canvases
    are copied over as they are (a quarter of the bytes of float images) and augmented there."""
    if "extents" not in batch:
        return runtime.to_device(batch["images"])
    if augment is None:
        raise RuntimeError("the loader yields un-augmented canvases (gpu_augment) but no device augmentation is set")
    canvas = batch["images"].to(runtime.device, non_blocking=True)
    extents = batch["extents"].to(runtime.device, non_blocking=True)
    return augment(canvas, extents, step).contiguous(memory_format=runtime.memory_format)


def run_loop(session: Session, stage: Stage, guard: NonFiniteGuard) -> Path:
    """Batches, learning-rate schedule, step, metrics, image grids and checkpoints, until the last step (or, with
    ``stage.max_seconds``, until the time budget is spent: the run then ends at a checkpoint of the step reached).

    Every row gets ``wall_s``: training seconds since the run started, summed across resumes (the checkpoint keeps
    it), without the time spent in ``after_step`` (the kNN monitor).

    Nothing in a step waits for the device: metrics are summed where they are, a CUDA run's NaN guard keeps its
    verdict on the device, and both are read back once per logged row.
    """
    cfg, runtime, run = session.cfg, session.runtime, session.run
    augment = DeviceAugment.from_config(cfg, dist_utils.rank()) if getattr(cfg, "gpu_augment", False) else None
    speed, averager = Throughput(), MetricAverager()
    clock = RunClock(float(session.resumed.get("wall_s", 0.0)) if session.resumed else 0.0)
    step = session.start_step
    # with a time budget, one clock for all ranks (the largest): it sets the learning rate and the last step
    elapsed = dist_utils.max_over_ranks(clock.seconds(), runtime.device) if stage.max_seconds else clock.seconds()
    out_of_time = 0 < stage.max_seconds <= elapsed
    bar = progress_bar(session.total_steps, step, cfg.progress and run.enabled, stage.name)
    data = batches(session.loader, session.sampler, step, session.steps_per_epoch)

    # the best kNN step's networks (monitoring, like the kNN itself: outside wall_s)
    keeps_best = stage.after_step is not None and getattr(cfg, "knn_val", "") and getattr(cfg, "keep_best_knn", False)
    best_knn = BestKnn(session.checkpoints, step) if keeps_best else None

    def after_step(index: int, epoch: int) -> None:
        with clock.paused():
            extra = stage.after_step(index) if stage.after_step is not None else {}
            if extra and best_knn is not None:
                best_knn.offer(index, extra, lambda: stage.payload(index))
        if extra:
            log_extra(run, index, epoch, extra, clock.seconds())

    try:
        if step == 0:
            after_step(0, 0)  # the network the run starts from, so every trajectory has its origin
        while step < session.total_steps and not out_of_time:
            epoch, batch = next(data)
            report_skipped(session, batch)
            if batch["images"].shape[0] < max(stage.min_batch, 1):
                continue
            images = batch_images(batch, runtime, augment, step)
            factor = lr_factor(step, session.total_steps, cfg.lr_decay_fraction, cfg.lr_final_factor)
            if stage.max_seconds:  # the schedule follows whichever budget is nearer its end
                factor = min(factor, lr_factor(elapsed, stage.max_seconds, cfg.lr_decay_fraction, cfg.lr_final_factor))
            for optimizer, base_lr in stage.optimizers:
                set_lr(optimizer, base_lr, factor)
            metrics, output = stage.step(images, batch["labels"].to(runtime.device, non_blocking=True), step)
            step += 1
            speed.add(images.shape[0] * dist_utils.world_size())
            averager.add(metrics)
            bar.update(1)
            if stage.max_seconds:
                elapsed = dist_utils.max_over_ranks(clock.seconds(), runtime.device)
                out_of_time = elapsed >= stage.max_seconds
            last = step == session.total_steps or out_of_time
            if step % cfg.log_every == 0 or last:
                guard.check(step)  # deferred (CUDA) guard: skipped steps are logged, and counted, here
                row = {"step": step, "epoch": epoch, **averager.means(), "images_per_s": speed.rate(),
                       "lr": cfg.lr * factor, "skipped_images": session.skipped_images, "skipped_steps": guard.total,
                       "wall_s": round(clock.seconds(), 3)}
                row = dist_utils.mean_over_ranks(row, runtime.device)
                run.log_metrics(row)
                bar.set_postfix({label: f"{row[key]:.3f}" for label, key in stage.postfix.items() if key in row}
                                | {"img_s": f"{row['images_per_s']:.1f}"})
            after_step(step, epoch)
            if stage.grid is not None and (step % cfg.image_every == 0 or last):
                run.save_grid(stage.grid_name, step, stage.grid(images, output))
            if step % cfg.checkpoint_every == 0 or last:
                check_ranks_in_sync(stage.sync_modules, runtime.device, step)
                session.checkpoints.save({**stage.payload(step), "wall_s": clock.seconds()}, step, final=last)
        if out_of_time:
            log.info("%s: time budget of %.0f s spent at step %d of %d", stage.name, stage.max_seconds, step,
                     session.total_steps)
    finally:
        bar.close()
        run.close()
    log.info("%s done: %s", stage.name, session.checkpoints.latest)
    return session.checkpoints.latest
