"""What the three VOC tasks share: the trunk to transfer, the run folder, torchrun, and one resumable epoch loop.

- ``load_trunk``: conv1..conv5 of a train-spot, train-supervised or train-rotnet checkpoint (or a random init),
  trainable.
- ``TransferRun``: device and precision, torchrun process group, ``RunDir`` (metrics.jsonl, TensorBoard),
  per-epoch checkpoints (``OUT/checkpoints/latest.pt``, atomic), ``--resume``, and the result file.
- ``TransferRun.fit``: epochs of a task's ``step`` with SGD or Adam, a step-decay schedule, gradient averaging
  across ranks (``DistributedDataParallel``), progress bars and a NaN guard.
- ``gather``: every rank's evaluation outputs on every rank, so metrics are computed over the whole test split.

Every task keeps BatchNorm statistics (conv5's) fixed while fine-tuning: VOC batches are small (detection trains on
a few images per GPU), where running statistics from a batch would be noise, and frozen statistics are what
Detectron-style fine-tuning does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..models import Trunk
from ..train import distributed as dist_utils
from ..train.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ..train.device import Runtime, pick_device, resolve_precision
from ..train.nonfinite import NonFiniteGuard
from ..train.optimisation import seed_everything
from ..train.progress import progress_bar
from ..train.rundir import RunDir
from .devkit import DEFAULT_VOC_ROOT

log = logging.getLogger("spotart")


@dataclass
class TransferOptions:
    """Flags every VOC task has; each task's options extend these."""

    voc_root: str = DEFAULT_VOC_ROOT
    download: bool = False
    year: str = "2007"  # each task sets its own year and splits
    train_split: str = "trainval"
    test_split: str = "test"
    checkpoint: str | None = None
    init: str = "checkpoint"  # checkpoint | random
    freeze_trunk: bool = False  # train only the new head on frozen conv1..conv5
    epochs: int = 10
    batch_size: int = 16  # per process
    lr: float = 1e-3
    optimizer: str = "sgd"  # sgd (momentum 0.9) | adam
    weight_decay: float = 5e-4
    lr_steps: tuple[float, ...] = (0.66,)  # fractions of the run where the learning rate drops 10x
    trunk_lr_factor: float = 1.0  # the pretrained layers' learning rate relative to the head's
    workers: int = 2
    precision: str = "auto"  # auto | bf16 | fp32
    seed: int = 0
    progress: bool = True
    log_every: int = 20

    def check(self) -> None:
        problems = []
        if self.epochs <= 0 or self.batch_size <= 0:
            problems.append("epochs and batch size must be positive")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0 or self.trunk_lr_factor < 0:
            problems.append("lr must be positive, weight decay and trunk lr factor >= 0")
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if any(not 0 < f < 1 for f in self.lr_steps):
            problems.append("lr steps are fractions of the run between 0 and 1")
        if self.init not in ("checkpoint", "random"):
            problems.append(f"init must be checkpoint or random, not {self.init!r}")
        if problems:
            raise ValueError("; ".join(problems))


def load_trunk(checkpoint: str | None, init: str = "checkpoint", seed: int = 0) -> tuple[Trunk, str]:
    """conv1..conv5 to fine-tune, and where they came from (the checkpoint path or "random init (seed N)")."""
    from ..evaluation.backbones import load_backbone
    from ..evaluation.errors import EvaluationError

    backbone = load_backbone(checkpoint, init=init, seed=seed)
    if not isinstance(backbone.net, Trunk):
        raise EvaluationError(f"{checkpoint} is a {backbone.kind} checkpoint: VOC transfer needs a discriminator "
                              "trunk (a train-spot, train-supervised or train-rotnet checkpoint, or --init random)")
    return backbone.net.requires_grad_(True), backbone.origin


def freeze_batchnorm(module: nn.Module) -> None:
    """BatchNorm layers to eval mode: their running statistics stay those of pretraining."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()


class TransferRun:
    """One ``spotart voc-*`` run in ``out``: set-up, the epoch loop, checkpoints and the result file."""

    def __init__(self, task: str, out: str | Path, options: TransferOptions, resume: bool = False) -> None:
        options.check()
        dist_utils.init_from_env()
        self.task, self.options = task, options
        device = pick_device()
        dtype = resolve_precision(options.precision, device)
        self.runtime = Runtime(device, dtype, channels_last=False)  # variable image sizes: keep NCHW
        seed_everything(options.seed)
        self.run = RunDir(out)
        self.latest = self.run.checkpoints / "latest.pt"
        self.resumed: dict[str, Any] | None = None
        if resume:
            if not self.latest.is_file():
                raise CheckpointError(f"--resume: no checkpoint at {self.latest} to resume from")
            self.resumed = load_checkpoint(self.latest, expect_stage=task)
        elif self.latest.is_file():
            raise CheckpointError(f"{self.run.root} already holds a {task} run ({self.latest}): pass --resume to "
                                  "continue it, or choose another --out")
        if dist_utils.is_main_process():
            (self.run.root / "options.json").write_text(json.dumps(asdict(options), indent=1, default=str))
        self.guard = NonFiniteGuard()

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    # ------------------------------------------------------------------------------------------- data
    def sampler(self, dataset: torch.utils.data.Dataset, shuffle: bool) -> Iterable[int]:
        """Each rank's share of the data (torchrun), reshuffled per epoch from the seed."""
        if dist_utils.is_distributed() and shuffle:
            return torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=self.options.seed, drop_last=True)
        if dist_utils.is_distributed():  # evaluation: every image exactly once over all ranks, none padded in
            return list(range(dist_utils.rank(), len(dataset), dist_utils.world_size()))
        if shuffle:
            return _EpochShuffle(len(dataset), self.options.seed)
        return torch.utils.data.SequentialSampler(dataset)

    def loader(self, dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool,
               collate: Callable[[list], Any]) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler(dataset, shuffle), num_workers=self.options.workers,
            collate_fn=collate, pin_memory=self.device.type == "cuda", drop_last=False,
            persistent_workers=False, generator=torch.Generator().manual_seed(self.options.seed))

    # -------------------------------------------------------------------------------------- optimisation
    def optimizer(self, model: nn.Module, trunk: nn.Module) -> torch.optim.Optimizer:
        """Two parameter groups: the transferred trunk (``trunk_lr_factor`` x lr) and the new head (lr)."""
        o = self.options
        trunk_ids = {id(p) for p in trunk.parameters()}
        trunk_params = [p for p in model.parameters() if p.requires_grad and id(p) in trunk_ids]
        head_params = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_ids]
        groups = [{"params": head_params, "lr": o.lr, "base_lr": o.lr}]
        if trunk_params:
            groups.append({"params": trunk_params, "lr": o.lr * o.trunk_lr_factor, "base_lr": o.lr * o.trunk_lr_factor})
        fused = {"fused": True} if self.device.type in ("cuda", "cpu") else {}
        if o.optimizer == "adam":
            return torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay, **fused)
        return torch.optim.SGD(groups, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay, **fused)

    def lr_scale(self, step: int, total: int) -> float:
        """Step decay: 10x lower after each fraction in ``lr_steps``; a linear warm-up over the first 2%."""
        drops = sum(step >= int(f * total) for f in self.options.lr_steps)
        warmup = max(1, int(0.02 * total))
        return 0.1 ** drops * min(1.0, (step + 1) / warmup)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel`` under torchrun (gradients averaged across ranks), else the model itself."""
        model.to(self.device)
        if not dist_utils.is_distributed():
            return model
        dist_utils.broadcast_module(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)

    # ------------------------------------------------------------------------------------------- the loop
    def fit(self, model: nn.Module, trunk: nn.Module, loader: torch.utils.data.DataLoader,
            step: Callable[[nn.Module, Any], dict[str, torch.Tensor]], evaluate: Callable[[int], dict[str, float]]
            | None = None, eval_every: int = 0) -> nn.Module:
        """Train for ``options.epochs``; ``step(model, batch)`` returns losses, of which ``"loss"`` is minimised.

        The model is checkpointed after every epoch, and a resumed run restarts at the next epoch with the same
        weights, optimiser state, schedule and random state. ``evaluate(epoch)`` runs every ``eval_every`` epochs
        (and never in between when 0); its metrics go to metrics.jsonl.
        """
        o = self.options
        wrapped = self.wrap(model)
        optimizer = self.optimizer(model, trunk)
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise ValueError(f"{self.task}: the training split gives no batch of {o.batch_size} images")
        total = o.epochs * steps_per_epoch
        start_epoch = 0
        if self.resumed:
            model.load_state_dict(self.resumed["model"])
            optimizer.load_state_dict(self.resumed["optimizer"])
            set_rng_state(self.resumed["rng"])
            start_epoch = int(self.resumed["epoch"])
            self.run.truncate_metrics(start_epoch * steps_per_epoch)
            log.info("%s: resuming from %s after epoch %d", self.task, self.latest, start_epoch)
        bar = progress_bar(total, start_epoch * steps_per_epoch, o.progress and dist_utils.is_main_process(),
                           self.task)
        global_step = start_epoch * steps_per_epoch
        for epoch in range(start_epoch, o.epochs):
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            wrapped.train()
            if o.freeze_trunk:
                trunk.eval()
            freeze_batchnorm(trunk)
            started, seen, running = time.perf_counter(), 0, {}
            for batch in loader:
                if batch is None:  # every image of the batch was unreadable
                    continue
                scale = self.lr_scale(global_step, total)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * scale
                with self.runtime.autocast():
                    losses = step(wrapped, batch)
                optimizer.zero_grad(set_to_none=True)
                if self.guard.ok(global_step, losses):
                    losses["loss"].backward()
                    optimizer.step()
                global_step += 1
                seen += 1
                for key, value in losses.items():  # summed on the device: read back only when a row is logged
                    value = value.detach().float()
                    running[key] = running[key] + value if key in running else value
                bar.update(1)
                if global_step % o.log_every == 0 or seen == steps_per_epoch:
                    row = {key: float(value) / max(1, seen) for key, value in running.items()}  # epoch so far
                    bar.set_postfix(loss=f"{row['loss']:.3f}")
                    self.run.log_metrics({"step": global_step, "epoch": epoch + 1, "lr": o.lr * scale, **row})
            log.info("%s: epoch %d/%d, loss %.4f, %.0f s", self.task, epoch + 1, o.epochs,
                     float(running.get("loss", float("nan"))) / max(1, seen), time.perf_counter() - started)
            if evaluate is not None and eval_every and (epoch + 1) % eval_every == 0 and epoch + 1 < o.epochs:
                metrics = evaluate(epoch + 1)
                self.run.log_metrics({"step": global_step, "epoch": epoch + 1, **metrics})
            self.save(model, optimizer, epoch + 1)
        bar.close()
        return model

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        if dist_utils.is_main_process():
            save_checkpoint(self.latest, {"stage": self.task, "format": CHECKPOINT_FORMAT, "epoch": epoch,
                                          "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "rng": rng_state(), "options": json.dumps(asdict(self.options),
                                                                                     default=str)})

    def write_result(self, result: dict[str, Any]) -> Path:
        """``OUT/<task>.json`` (rank 0) and TensorBoard; returns the path."""
        path = self.run.root / f"{self.task.replace('-', '_')}.json"
        if dist_utils.is_main_process():
            path.write_text(json.dumps(result, indent=2))
        self.run.close()
        return path

    def finish(self, result: dict[str, Any], origin: str, train_images: int, started: float,
               table: Callable[[dict[str, Any]], None], **settings: Any) -> dict[str, Any]:
        """Add what the run was (trunk, splits, sizes, wall time) to ``result``, write it, print its table."""
        o = self.options
        result.update(task=self.task, trunk=origin, frozen_trunk=o.freeze_trunk, year=o.year,
                      train_split=o.train_split, test_split=o.test_split, train_images=train_images,
                      epochs=o.epochs, **settings, wall_s=round(time.perf_counter() - started, 1))
        path = self.write_result(result)
        if dist_utils.is_main_process():
            table(result)
            print(f"results: {path}")
        return result


def print_ap_table(title: str, result: dict[str, Any], mean_11point: str, mean_area: str) -> None:
    """Per-class average precision, 11-point and area, and their means (voc-cls and voc-det)."""
    print(f"{title}, trunk {result['trunk']}{' frozen' if result['frozen_trunk'] else ''}")
    print(f"{'class':<14}{'AP 11-pt':>10}{'AP area':>10}")
    for name, values in result["per_class"].items():
        print(f"{name:<14}{values['ap_11point']:>10.1f}{values['ap_area']:>10.1f}")
    print(f"{'mean':<14}{result[mean_11point]:>10.1f}{result[mean_area]:>10.1f}")


class _EpochShuffle(torch.utils.data.Sampler):
    """A fresh permutation per epoch from (seed, epoch): resuming at epoch e sees epoch e's order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=gen).tolist())


class VOCImageSet(torch.utils.data.Dataset):
    """Images of a split by id; an unreadable image comes back as None (dropped by the collate functions), a
    readable one as ``self.item(image, index)``, which each task defines."""

    def __init__(self, folder: Path, ids: list[str]) -> None:
        self.folder, self.ids = folder, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        from . import devkit

        image = devkit.load_image(self.folder, self.ids[index])
        return None if image is None else self.item(image, index)

    def item(self, image: Any, index: int) -> Any:
        raise NotImplementedError


def collate_stacked(items: list) -> tuple[torch.Tensor, ...] | None:
    """A batch of (tensor, ..., index) items, each field stacked; unreadable images (None items) are dropped, and
    a batch with none left is None (the loop skips it)."""
    items = [item for item in items if item is not None]
    if not items:
        return None
    *tensors, indices = zip(*items)
    return (*(torch.stack(field) for field in tensors), torch.tensor(indices))


def gather(items: Iterable[Any]) -> list[Any]:
    """Concatenate a list from every rank (in rank order) on every rank; the list itself without torchrun."""
    items = list(items)
    if not dist_utils.is_distributed():
        return items
    parts: list[list[Any]] = [[] for _ in range(dist_utils.world_size())]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def gather_by_index(rows: Iterable[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """(image index, result) rows from every rank, sorted by index: the same order whatever the sharding."""
    return sorted(gather(rows), key=lambda row: row[0])
