"""A kNN accuracy monitor on the discriminator's features, cheap enough to run while a network trains.

Why kNN: it needs no training, so a number every few hundred steps costs only two forward passes over a few
thousand images, and it moves with the quality of the features (Wu et al. 2018 use the same weighted cosine vote:
k = 20 neighbours, weights exp(similarity / 0.07)). Each monitored layer is pooled as in the linear probe
(``features.pool_grid``), flattened and L2-normalised. Several layers by default (conv2, conv3, conv5): at small
budgets conv5 alone misleads, since a pretext task can improve the middle layers while its conv5 specialises.
Rows are ``{"knn_conv2": percent, ...}``; runs logged before the monitor measured several layers have
``knn_top1`` (conv5) instead.

The training commands build the monitor (``monitor_from_config``) and hand it to the training loop, which calls it
at step 0, before any update, and every ``every`` steps: a trajectory then starts from the network it trained.

The images are decoded once, at construction, into memory as uint8 (5,000 + 1,000 images at 96 px: 166 MB), so a
call does no file I/O. A call switches the discriminator to eval mode (BatchNorm statistics are not updated) and
back, and draws nothing from the global random state, so a monitored run stays identical to an unmonitored one.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..train.device import autocast, resolve_precision
from .datasets import (
    DEFAULT_DATA_ROOT,
    SubsetSource,
    check_same_classes,
    decode_images,
    open_labelled,
    subsample,
    to_model_range,
)
from .features import pool_features, pool_grid

log = logging.getLogger("spotart")


DEFAULT_LAYERS = ("conv2", "conv3", "conv5")
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


class KnnMonitor:
    """``monitor(network, step)`` -> ``{"knn_conv2": percent, ...}`` every ``every`` steps (step 0 too), else ``{}``.

    ``network`` is anything with ``forward_features`` (a trunk) or a ``trunk`` attribute that has it.
    """

    def __init__(self, train_dir: str, val_dir: str, image_size: int, every: int, k: int = 20,
                 temperature: float = 0.07, max_train: int | None = 5000, max_val: int | None = 1000,
                 batch_size: int = 200, precision: str = "auto", data_root: str = DEFAULT_DATA_ROOT,
                 seed: int = 0, layers: tuple[str, ...] = DEFAULT_LAYERS) -> None:
        if every < 1 or k < 1:
            raise ValueError(f"kNN monitor: every ({every}) and k ({k}) must be positive")
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"kNN monitor: layers must be some of {', '.join(LAYERS)}, "
                             f"not {', '.join(unknown) or 'none'}")
        self.layers = tuple(layers)
        train = open_labelled(train_dir, "train", "kNN memory", data_root)
        val = open_labelled(val_dir, "test", "kNN evaluation", data_root)
        check_same_classes(train, val)
        self.every, self.k, self.temperature = every, k, temperature
        self.batch_size, self.precision = batch_size, precision
        self.num_classes = len(train.classes)
        self.train_images, self.train_labels = self._decode(train.source, image_size, max_train, seed)
        self.val_images, self.val_labels = self._decode(val.source, image_size, max_val, seed + 1)
        log.info("kNN monitor: %d memory and %d evaluation images at %d px, k=%d, %s, every %d steps",
                 len(self.train_labels), len(self.val_labels), image_size, k, "/".join(self.layers), every)

    @staticmethod
    def _decode(source, image_size: int, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = subsample(len(source), limit, seed)
        return decode_images(SubsetSource(source, indices) if indices else source, image_size)

    def __call__(self, discriminator: nn.Module, step: int) -> dict[str, float]:
        if step % self.every:
            return {}
        return self.evaluate(discriminator)

    def evaluate(self, network: nn.Module) -> dict[str, float]:
        """Weighted kNN top-1 (percent) of the evaluation images against the memory images, per layer."""
        trunk = getattr(network, "trunk", network)
        was_training = network.training
        network.eval()
        try:
            memory = self._embed(trunk, self.train_images)
            queries = self._embed(trunk, self.val_images)
        finally:
            network.train(was_training)
        return {f"knn_{layer}": self._top1(memory[layer], queries[layer]) for layer in self.layers}

    def _top1(self, memory: torch.Tensor, queries: torch.Tensor) -> float:
        k = min(self.k, len(memory))
        correct = 0
        for start in range(0, len(queries), 1024):
            sims, idx = (queries[start : start + 1024] @ memory.T).topk(k, dim=1)
            votes = torch.zeros(len(idx), self.num_classes)
            votes.scatter_add_(1, self.train_labels[idx], (sims / self.temperature).exp())
            correct += int((votes.argmax(1) == self.val_labels[start : start + 1024]).sum())
        return 100.0 * correct / len(queries)

    @torch.no_grad()
    def _embed(self, trunk: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(trunk.parameters()).device
        dtype = resolve_precision(self.precision, device)
        out: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        for start in range(0, len(images), self.batch_size):
            batch = to_model_range(images[start : start + self.batch_size]).to(device)
            with autocast(device, dtype):
                maps = trunk.forward_features(batch)
            for layer in self.layers:
                grid = pool_grid(maps[layer].shape[1], maps[layer].shape[-1])
                out[layer].append(F.normalize(pool_features(maps[layer], grid), dim=1).cpu())
        return {layer: torch.cat(parts) for layer, parts in out.items()}


def monitor_from_config(cfg) -> KnnMonitor | None:
    """The monitor a training config asks for (``knn_val`` set), on the main process only; else None."""
    from ..train import distributed as dist_utils

    if not cfg.knn_val or not dist_utils.is_main_process():
        return None
    return KnnMonitor(cfg.knn_train or cfg.data, cfg.knn_val, cfg.image_size, cfg.knn_every,
                      max_train=cfg.knn_max_train, max_val=cfg.knn_max_val, precision=cfg.precision,
                      data_root=cfg.data_root, seed=cfg.seed, layers=tuple(cfg.knn_layers))
