"""``spotart train-supervised``: the same AlexNet trunk trained with labels, the upper bound of every probe table.

It is a training run like the two stages (``start_session``: run directory, ``metrics.jsonl``, TensorBoard,
resumable checkpoints, the official augmentation, Adam and schedule, bf16 autocast), with cross-entropy on the
labels through ``classifier.TrunkClassifier``. The checkpoint has stage ``"supervised"`` and holds a
``"discriminator"`` state dict of ``spotart.models.Discriminator`` (its trunk trained, its two heads untouched) plus
the classifier head of its own, so ``spotart probe`` and ``spotart finetune`` read it exactly like a stage-2 one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import CommonConfig, ConfigError, apply_overrides, config_to_dict, parse_set_args
from ..models import Discriminator, check_resolution
from ..train import distributed as dist_utils
from ..train.checkpoints import CHECKPOINT_FORMAT, rng_state, set_rng_state
from ..train.nonfinite import NonFiniteGuard
from ..train.optimisation import make_adam
from ..train.session import Stage, count_parameters, run_loop, start_session
from .classifier import TrunkClassifier, classifier_step
from .datasets import open_labelled

log = logging.getLogger("spotart")

STAGE = "supervised"


@dataclass
class SupervisedConfig(CommonConfig):
    """The common training keys (data, optimiser, augmentation, engineering) plus the classifier head."""

    stl10_split: str = "train"  # the labelled STL-10 split
    epochs: int = 90  # AlexNet's ImageNet schedule
    hidden: int = 4096  # classifier head width, as the discriminator's class head (0: one linear layer)


def build_supervised_config(set_pairs: list[str] | None = None, values: dict | None = None) -> SupervisedConfig:
    """Defaults, then explicit flags, then ``--set key=value`` (type-checked like the training configs)."""
    cfg = SupervisedConfig()
    apply_overrides(cfg, {k: v for k, v in (values or {}).items() if v is not None}, source="command line")
    apply_overrides(cfg, parse_set_args(set_pairs or []), source="--set")
    if cfg.batch_size <= 0 or cfg.lr <= 0 or cfg.hidden < 0:
        raise ConfigError("batch_size and lr must be positive and hidden >= 0")
    if cfg.steps < 0 or cfg.epochs < 0 or (cfg.steps == 0 and cfg.epochs == 0):
        raise ConfigError("set a positive number of steps or epochs (steps takes precedence when both are set)")
    if cfg.precision not in ("auto", "bf16", "fp32") or cfg.channels_last not in ("auto", "on", "off"):
        raise ConfigError("precision must be auto, bf16 or fp32 and channels_last auto, on or off")
    check_resolution(cfg.image_size)
    return cfg


def checkpoint_payload(disc: Discriminator, model: TrunkClassifier, optimizer: torch.optim.Optimizer,
                       cfg: SupervisedConfig, classes: list[str], step: int) -> dict:
    return {
        "stage": STAGE,
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": config_to_dict(cfg),
        "discriminator": disc.state_dict(),
        "classifier": model.head.state_dict(),
        "classes": classes,
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
    }


def train_supervised(cfg: SupervisedConfig, out: str, resume: bool = False) -> Path:
    """Train conv1..conv5 and the head on the labels of ``cfg.data``; return the latest checkpoint."""
    classes = open_labelled(cfg.data, cfg.stl10_split, "training", cfg.data_root).classes
    session = start_session(cfg, out, "train-supervised", stage=STAGE, resume=resume)
    runtime = session.runtime
    disc = Discriminator(cfg.image_size)
    model = TrunkClassifier(disc.trunk, cfg.image_size, len(classes), cfg.hidden)
    model.to(runtime.device, memory_format=runtime.memory_format)
    dist_utils.broadcast_module(model)
    optimizer = make_adam(model, cfg)
    if session.resumed:
        disc.load_state_dict(session.resumed["discriminator"])
        model.head.load_state_dict(session.resumed["classifier"])
        optimizer.load_state_dict(session.resumed["optimizer"])
        set_rng_state(session.resumed["rng"])
    else:
        torch.manual_seed(cfg.seed + dist_utils.rank())
    log.info("supervised AlexNet: %.2fM parameters, %d classes", count_parameters(model) / 1e6, len(classes))

    guard = NonFiniteGuard.for_device(runtime.device)  # deferred on CUDA: no host sync inside a step

    def step(images: torch.Tensor, labels: torch.Tensor, index: int) -> tuple[dict[str, torch.Tensor], None]:
        return classifier_step(model, images, labels, optimizer, runtime, guard, index), None

    model.train()
    stage = Stage(
        name="train-supervised",
        step=step,
        optimizers=[(optimizer, cfg.lr)],
        payload=lambda index: checkpoint_payload(disc, model, optimizer, cfg, classes, index),
        sync_modules=[model],
        postfix={"loss": "loss", "acc": "acc"},
        min_batch=2,  # the head's BatchNorm needs two images
    )
    return run_loop(session, stage, guard)
