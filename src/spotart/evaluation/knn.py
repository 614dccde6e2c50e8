"""A kNN accuracy monitor on the discriminator's conv5 features, cheap enough to run during stage 2.

Why kNN: it needs no training, so a number every few hundred steps costs only two forward passes over a few
thousand images, and it moves with the quality of the features (Wu et al. 2018 use the same weighted cosine vote:
k = 20 neighbours, weights exp(similarity / 0.07)). conv5 is pooled as in the linear probe (``features.pool_grid``),
flattened and L2-normalised.

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


class KnnMonitor:
    """``monitor(discriminator, step)`` -> ``{"knn_top1": percent}`` every ``every`` steps, else ``{}``."""

    def __init__(self, train_dir: str, val_dir: str, image_size: int, every: int, k: int = 20,
                 temperature: float = 0.07, max_train: int | None = 5000, max_val: int | None = 1000,
                 batch_size: int = 200, precision: str = "auto", data_root: str = DEFAULT_DATA_ROOT,
                 seed: int = 0) -> None:
        if every < 1 or k < 1:
            raise ValueError(f"kNN monitor: every ({every}) and k ({k}) must be positive")
        train = open_labelled(train_dir, "train", "kNN memory", data_root)
        val = open_labelled(val_dir, "test", "kNN evaluation", data_root)
        check_same_classes(train, val)
        self.every, self.k, self.temperature = every, k, temperature
        self.batch_size, self.precision = batch_size, precision
        self.num_classes = len(train.classes)
        self.train_images, self.train_labels = self._decode(train.source, image_size, max_train, seed)
        self.val_images, self.val_labels = self._decode(val.source, image_size, max_val, seed + 1)
        log.info("kNN monitor: %d memory and %d evaluation images at %d px, k=%d, every %d steps",
                 len(self.train_labels), len(self.val_labels), image_size, k, every)

    @staticmethod
    def _decode(source, image_size: int, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = subsample(len(source), limit, seed)
        return decode_images(SubsetSource(source, indices) if indices else source, image_size)

    def __call__(self, discriminator: nn.Module, step: int) -> dict[str, float]:
        if step % self.every:
            return {}
        return self.evaluate(discriminator)

    def evaluate(self, discriminator: nn.Module) -> dict[str, float]:
        """Weighted kNN top-1 (percent) of the evaluation images against the memory images."""
        trunk = getattr(discriminator, "trunk", discriminator)
        was_training = discriminator.training
        discriminator.eval()
        try:
            memory = self._embed(trunk, self.train_images)
            queries = self._embed(trunk, self.val_images)
        finally:
            discriminator.train(was_training)
        k = min(self.k, len(memory))
        correct = 0
        for start in range(0, len(queries), 1024):
            sims, idx = (queries[start : start + 1024] @ memory.T).topk(k, dim=1)
            votes = torch.zeros(len(idx), self.num_classes)
            votes.scatter_add_(1, self.train_labels[idx], (sims / self.temperature).exp())
            correct += int((votes.argmax(1) == self.val_labels[start : start + 1024]).sum())
        return {"knn_top1": 100.0 * correct / len(queries)}

    @torch.no_grad()
    def _embed(self, trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
        device = next(trunk.parameters()).device
        dtype = resolve_precision(self.precision, device)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = to_model_range(images[start : start + self.batch_size]).to(device)
            with autocast(device, dtype):
                conv5 = trunk.forward_features(batch)["conv5"]
            grid = pool_grid(conv5.shape[1], conv5.shape[-1])
            out.append(F.normalize(pool_features(conv5, grid), dim=1).cpu())
        return torch.cat(out)
