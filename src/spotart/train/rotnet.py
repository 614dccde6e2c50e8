"""``spotart train-rotnet``: RotNet (Gidaris et al., ICLR 2018) on the discriminator's own trunk, a yardstick.

RotNet's pretext task: turn each image by 0, 90, 180 or 270 degrees and predict which. As in the authors' code
(``dataloader.py`` of github.com/gidariss/FeatureLearningRotNet), every batch holds all four rotations of each of
its images, so a batch of B images is 4B network inputs, each rotation's block seeing the same augmented crops. The
network is spotart's conv1..conv5 (``models.Trunk``, the same padding and resolutions as stage 2) with RotNet's
AlexNet head (``models.rotation_head``). Data, augmentation, Adam and its schedule are the common config's, and the
run goes through the same loop as both stages (``session.run_loop``): run directory, ``metrics.jsonl``,
TensorBoard, checkpoints, exact ``--resume``, torchrun, bf16, the NaN guard and the kNN monitor.

``images_per_s`` counts source images (B per step, as for the other stages), not the 4B rotated inputs.
The checkpoint (stage ``"rotnet"``) holds the trunk (``"trunk"``) and the head; ``probe``, ``finetune``, ``export`` and
the VOC commands read its trunk like a stage-2 one (``train.trunks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..config import RotNetConfig, config_to_dict
from ..models import ROTATIONS, RotNet
from ..models.gemm_conv import use_gemm_weight_grads
from . import distributed as dist_utils
from .checkpoints import CHECKPOINT_FORMAT, rng_state, set_rng_state
from .cross_entropy import cross_entropy_step
from .device import Runtime, maybe_compile
from .nonfinite import UNGUARDED, NonFiniteGuard
from .optimisation import make_adam
from .session import Stage, count_parameters, run_loop, start_session

log = logging.getLogger("spotart")

STAGE = "rotnet"


def all_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, S, S) -> every image turned by k x 90 degrees counter-clockwise (``torch.rot90`` over H, W), block by
    block: (4B, C, S, S) with rows k*B .. k*B + B - 1 turned by k, and the labels k, (4B,)."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotations of non-square images ({tuple(images.shape[-2:])}) cannot share a batch")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def rotnet_step(
    model: RotNet, forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
    optimizer: torch.optim.Optimizer, runtime: Runtime, guard: NonFiniteGuard = UNGUARDED, step: int = 0,
) -> dict[str, torch.Tensor]:
    """One optimiser step on the four rotations of ``images``: cross-entropy over the 4 rotation classes."""
    rotated, labels = all_rotations(images)
    rotated = rotated.contiguous(memory_format=runtime.memory_format)
    loss, logits = cross_entropy_step(model, forward, rotated, labels, optimizer, runtime, guard, step)
    correct = logits.argmax(1) == labels
    return {"loss": loss, "rot_acc": correct.float().mean()}


def rotation_grid(images: torch.Tensor, count: int = 8) -> torch.Tensor:
    """Rows: the first ``count`` images at 0, 90, 180 and 270 degrees, as the network sees them, in [0, 1]."""
    rotated, _ = all_rotations(images[:count].float().cpu())
    return make_grid(rotated.add(1).div(2).clamp(0, 1), nrow=min(count, images.shape[0]), padding=2)


def checkpoint_payload(model: RotNet, optimizer: torch.optim.Optimizer, cfg: RotNetConfig, step: int) -> dict:
    return {
        "stage": STAGE,
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": config_to_dict(cfg),
        "trunk": model.trunk.state_dict(),
        "head": model.head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
    }


def train_rotnet(cfg: RotNetConfig, out: str, resume: bool = False,
                 monitor: Callable[[torch.nn.Module, int], dict[str, float]] | None = None) -> Path:
    """Train RotNet; return the latest checkpoint. ``monitor(model, step)`` gives extra metrics at some steps (the
    kNN monitor, built by the caller: ``evaluation.knn.monitor_from_config``), at step 0 and after every step."""
    session = start_session(cfg, out, "train-rotnet", stage=STAGE, resume=resume)
    runtime = session.runtime
    # the trunk first: it starts as the random-init baseline of its seed, init and padding
    model = RotNet(cfg.image_size, cfg.rotnet_hidden, cfg.disc_padding, cfg.disc_init)
    model = dist_utils.convert_batchnorm(model, cfg.sync_batchnorm, runtime.device)
    model.to(runtime.device, memory_format=runtime.memory_format)
    if runtime.gemm_weight_grads:
        use_gemm_weight_grads(model)
    dist_utils.broadcast_module(model)
    optimizer = make_adam(model, cfg)
    forward = maybe_compile(model, cfg.compile)  # shares parameters with `model`, which is what gets saved
    if session.resumed:
        model.trunk.load_state_dict(session.resumed["trunk"])
        model.head.load_state_dict(session.resumed["head"])
        optimizer.load_state_dict(session.resumed["optimizer"])
        set_rng_state(session.resumed["rng"])
    else:
        torch.manual_seed(cfg.seed + dist_utils.rank())
    log.info("RotNet: trunk %.2fM + head %.2fM parameters; each batch of %d images is %d rotated inputs%s",
             count_parameters(model.trunk) / 1e6, count_parameters(model.head) / 1e6, cfg.batch_size,
             ROTATIONS * cfg.batch_size, f"; time budget {cfg.max_seconds:.0f} s" if cfg.max_seconds else "")
    if cfg.knn_val and monitor is None and dist_utils.is_main_process():
        log.warning("knn_val is set but no monitor was handed to train_rotnet: no kNN rows are logged "
                    "(spotart train-rotnet builds one; from Python pass monitor=monitor_from_config(cfg))")
    guard = NonFiniteGuard.for_device(runtime.device)

    def step(images: torch.Tensor, labels: torch.Tensor, index: int) -> tuple[dict, None]:
        return rotnet_step(model, forward, images, optimizer, runtime, guard, index), None

    def after_step(index: int) -> dict[str, float]:
        return monitor(model, index) if monitor is not None else {}

    model.train()
    stage = Stage(
        name="train-rotnet",
        step=step,
        optimizers=[(optimizer, cfg.lr)],
        payload=lambda index: checkpoint_payload(model, optimizer, cfg, index),
        sync_modules=[model],
        grid=lambda images, _: rotation_grid(images),
        grid_name="rotations",
        postfix={"loss": "loss", "acc": "rot_acc"},
        after_step=after_step,
        max_seconds=cfg.max_seconds,
    )
    return run_loop(session, stage, guard)
