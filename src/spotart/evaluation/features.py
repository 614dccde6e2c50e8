"""Frozen features of every layer, pooled to about 9,000 dimensions and cached on disk.

The standard AlexNet linear-probe protocol (Zhang et al. 2016, Goyal et al. 2019) resizes each layer's map by
average pooling so that all layers have a similar number of dimensions (~9k): at 96 px conv1 96x10x10 = 9600,
conv2 256x6x6 = 9216, conv3/conv4 384x5x5 = 9600, conv5 256x6x6 = 9216. The grid is ``round(sqrt(9000 / C))``,
never larger than the map itself, so smaller inputs give fewer dimensions (``dims_table`` states them).

Extraction is the expensive part (a forward pass over every image), the linear heads are cheap, so each split's
features are written once, as float16 per layer, under a key that includes the network's hash: re-running a probe
only re-trains the heads, and a different network can never pick up stale features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..train.device import Runtime, pick_device, resolve_channels_last, resolve_precision
from .backbones import Backbone
from .datasets import LabelledSource, SubsetSource, evaluation_loader, subsample
from .errors import EvaluationError

log = logging.getLogger("spotart")

TARGET_DIMS = 9000
POOLS = ("avg", "max")


def runtime_for(precision: str = "auto") -> Runtime:
    """Device and precision as training picks them (bf16 autocast where the hardware runs it fast)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise EvaluationError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    device = pick_device()
    dtype = resolve_precision(precision, device)
    return Runtime(device, dtype, resolve_channels_last("auto", device, dtype))


def pool_grid(channels: int, spatial: int, target: int = TARGET_DIMS) -> int:
    """Output grid of the adaptive pooling: about ``target`` dimensions, at most the map's own size."""
    return max(1, min(spatial, round(math.sqrt(target / channels))))


def pool_features(x: torch.Tensor, grid: int, pool: str = "avg") -> torch.Tensor:
    """(B, C, H, W) -> (B, C * grid * grid) float32."""
    x = x.float()
    pooled = F.adaptive_avg_pool2d(x, grid) if pool == "avg" else F.adaptive_max_pool2d(x, grid)
    return pooled.flatten(1)


@dataclass(frozen=True)
class LayerShape:
    channels: int
    spatial: int
    grid: int

    @property
    def dims(self) -> int:
        return self.channels * self.grid * self.grid

    def describe(self) -> str:
        return f"{self.channels}x{self.grid}x{self.grid} = {self.dims}"


def layer_shapes(backbone: Backbone, image_size: int) -> dict[str, LayerShape]:
    """Channels, map size and pooling grid of each layer at ``image_size``."""
    param = next(backbone.parameters())
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, image_size, image_size, device=param.device))
    return {name: LayerShape(m.shape[1], m.shape[-1], pool_grid(m.shape[1], m.shape[-1])) for name, m in maps.items()}


@dataclass
class FeatureCache:
    """One split's features on disk: ``<layer>.pt`` (float16, N x D) and ``labels.pt``; ``meta.json`` marks it done."""

    folder: Path
    layers: tuple[str, ...]

    def load(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.load(self.folder / f"{layer}.pt", weights_only=True)
        labels = torch.load(self.folder / "labels.pt", weights_only=True)
        return features, labels

    @property
    def meta(self) -> dict:
        return json.loads((self.folder / "meta.json").read_text())

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def skipped(self) -> int:
        return int(self.meta["skipped"])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def cache_key(backbone_hash: str, data: LabelledSource, image_size: int, pool: str, indices: list[int] | None,
              layers: tuple[str, ...]) -> str:
    """Everything the features depend on: the network, the images, the view, the pooling."""
    parts = {"net": backbone_hash, "data": data.name, "images": len(data), "size": image_size, "pool": pool,
             "grid_target": TARGET_DIMS, "layers": list(layers),
             "subset": hashlib.sha256(json.dumps(indices).encode()).hexdigest() if indices else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@torch.no_grad()
def extract_features(backbone: Backbone, source, image_size: int, pool: str, runtime: Runtime, batch_size: int,
                     workers: int, layers: tuple[str, ...], progress: bool = False
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """Pooled float16 features of every readable image, per layer, plus labels and the number skipped."""
    from tqdm.auto import tqdm

    backbone.eval()
    shapes = layer_shapes(backbone, image_size)
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    labels, skipped = [], 0
    loader = evaluation_loader(source, image_size, batch_size, workers)
    for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, dynamic_ncols=True):
        skipped += len(batch["skipped"])
        for reason in batch["skipped"][:3]:
            log.warning("skipped unreadable image %s", reason)
        if not batch["images"].numel():
            continue
        with runtime.autocast():
            maps = backbone(runtime.to_device(batch["images"]))
        for name in layers:
            chunks[name].append(pool_features(maps[name], shapes[name].grid, pool).half().cpu())
        labels.append(batch["labels"])
    if not labels:
        raise EvaluationError("none of the images could be read")
    return {name: torch.cat(parts) for name, parts in chunks.items()}, torch.cat(labels), skipped


def cached_features(backbone: Backbone, backbone_hash: str, data: LabelledSource, split: str, cache_root: Path,
                    pool: str, runtime: Runtime, batch_size: int = 128, workers: int = 2,
                    max_images: int | None = None, seed: int = 0, layers: tuple[str, ...] | None = None,
                    progress: bool = True) -> FeatureCache:
    """The features of ``data`` (optionally a fixed random subset, some layers), extracted once, then read from disk."""
    if pool not in POOLS:
        raise EvaluationError(f"pool must be one of {', '.join(POOLS)}, not {pool!r}")
    layers = layers or backbone.layers
    unknown = [name for name in layers if name not in backbone.layers]
    if unknown:
        raise EvaluationError(f"unknown layer {unknown[0]!r}: this network has {', '.join(backbone.layers)}")
    indices = subsample(len(data), max_images, seed)
    key = cache_key(backbone_hash, data, backbone.image_size, pool, indices, layers)
    folder = cache_root / f"{split}-{key}"
    cache = FeatureCache(folder, layers)
    if (folder / "meta.json").is_file():
        log.info("%s features: cached in %s", split, folder)
        return cache
    source = SubsetSource(data.source, indices) if indices else data.source
    log.info("%s features: extracting %d images from %s at %d px", split, len(source), data.name, backbone.image_size)
    features, labels, skipped = extract_features(backbone, source, backbone.image_size, pool, runtime, batch_size,
                                                 workers, layers, progress)
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in {**features, "labels": labels}.items():
        tmp = folder / f"{name}.pt.tmp"
        torch.save(tensor, tmp)
        os.replace(tmp, folder / f"{name}.pt")
    meta = {"count": len(labels), "skipped": skipped, "data": data.name, "image_size": backbone.image_size,
            "pool": pool, "dims": {name: int(t.shape[1]) for name, t in features.items()}}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks the cache complete
    return cache
