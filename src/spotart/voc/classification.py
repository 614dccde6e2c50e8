"""``spotart voc-cls``: PASCAL VOC 2007 multi-label classification, trainval -> test (METHOD.md: 69.8 mAP).

The protocol of Krähenbühl et al. (2016), which the paper follows: the transferred conv1..conv5 plus new fc6-fc8
layers (pool5, 4096, 4096, 20) are fine-tuned with a per-class sigmoid cross-entropy on random crops and flips;
test scores average ten crops (the four corners, the centre and their mirror images). ``--freeze-trunk`` trains the
fc layers only, on frozen conv1..conv5 (the paper's "fc6-8" rows of related work). Images whose only instances of a
class are "difficult" carry label 0 for it, and are left out of that class's loss and AP, as the devkit does.
Average precision is reported both ways: 11-point (VOC2007's devkit) and area under the curve (VOC2010 onwards).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from ..models import Trunk
from . import devkit
from .engine import (
    TransferOptions,
    TransferRun,
    VOCImageSet,
    collate_stacked,
    gather_by_index,
    load_trunk,
    print_ap_table,
)
from .metrics import VOC_CLASSES, classification_ap, mean_ignoring_nan

log = logging.getLogger("spotart")

TASK = "voc-cls"


@dataclass
class ClassificationOptions(TransferOptions):
    year: str = "2007"
    train_split: str = "trainval"
    test_split: str = "test"
    image_size: int = 227  # AlexNet's crop
    hidden: int = 4096  # fc6 and fc7 width (0: one linear layer on pool5)
    test_crops: int = 10  # 10: corners + centre and their mirrors; 1: the centre crop only
    epochs: int = 80
    batch_size: int = 32
    lr: float = 1e-3
    max_train: int | None = None  # the first N images of the split (a quick check); None: all
    max_test: int | None = None

    def check(self) -> None:
        super().check()
        if self.image_size < 32 or self.hidden < 0 or self.test_crops not in (1, 10):
            raise ValueError("image size must be >= 32, hidden >= 0 and test crops 1 or 10")


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    return image.mul(2.0).sub(1.0)  # ToTensor's [0, 1] -> the trunk's [-1, 1]


class VOCClassificationSet(VOCImageSet):
    """(image, labels in {1, 0, -1}, index); an unreadable image comes back as None and is dropped by ``collate``."""

    def __init__(self, folder: Path, ids: list[str], labels: np.ndarray, transform: Any) -> None:
        super().__init__(folder, ids)
        self.labels, self.transform = torch.from_numpy(labels), transform

    def item(self, image: Any, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.transform(image), self.labels[index], index


collate = collate_stacked  # (images, labels, indices)


def _stack_views(views: Any) -> torch.Tensor:
    """PIL crops (a tuple from TenCrop, or one image) -> (views, 3, H, W) in [-1, 1]."""
    views = views if isinstance(views, (tuple, list)) else (views,)
    return torch.stack([to_model_range(T.functional.to_tensor(view)) for view in views])


def train_transform(size: int) -> T.Compose:
    # module-level functions only (no lambdas), so that DataLoader workers can be spawned as well as forked
    return T.Compose([T.RandomResizedCrop(size, scale=(0.25, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(),
                      to_model_range])


def evaluation_transform(size: int, crops: int) -> T.Compose:
    """(crops, 3, size, size) per image: ten crops of the image resized to 1.15x the crop size, or its centre."""
    crop = T.TenCrop(size) if crops == 10 else T.CenterCrop(size)
    return T.Compose([T.Resize(int(round(size * 1.15))), crop, _stack_views])


class VOCClassifier(nn.Module):
    """conv1..conv5, pool5 (3x3/2 max pool, as AlexNet), then fc6 and fc7 (ReLU, dropout 0.5) and fc8 to 20 logits."""

    def __init__(self, trunk: Trunk, image_size: int, hidden: int = 4096, classes: int = len(VOC_CLASSES)) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool5 = nn.MaxPool2d(3, stride=2, padding=1)
        with torch.no_grad():  # the flattened pool5 size at this crop size
            features = self.pool5(trunk(torch.zeros(1, 3, image_size, image_size))).numel()
        if hidden:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                      nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                      nn.Linear(hidden, classes))
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(features, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool5(self.trunk(images)))


def multilabel_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy per class; label 0 (difficult only) contributes nothing."""
    counted = (labels != 0).float()
    loss = F.binary_cross_entropy_with_logits(logits.float(), (labels == 1).float(), weight=counted, reduction="sum")
    return loss / counted.sum().clamp(min=1.0)


@torch.no_grad()
def predict(model: nn.Module, loader: torch.utils.data.DataLoader, run: TransferRun) -> tuple[np.ndarray, np.ndarray]:
    """Per-image class scores (mean sigmoid over the crops) and the image indices, gathered from every rank."""
    model.eval()
    rows: list[tuple[int, np.ndarray]] = []
    for batch in loader:
        if batch is None:
            continue
        views, _, indices = batch
        b, crops = views.shape[:2]
        with run.runtime.autocast():
            logits = model(views.flatten(0, 1).to(run.device, non_blocking=True))
        scores = torch.sigmoid(logits.float()).view(b, crops, -1).mean(1).cpu().numpy()
        rows += list(zip(indices.tolist(), scores))
    rows = gather_by_index(rows)
    return np.stack([score for _, score in rows]), np.array([index for index, _ in rows])


def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, labels: np.ndarray, run: TransferRun
             ) -> dict[str, Any]:
    scores, indices = predict(model, loader, run)
    truth = labels[indices]
    ap_11 = classification_ap(scores, truth, method="11point")
    ap_area = classification_ap(scores, truth, method="area")
    present = [name for name, value in zip(VOC_CLASSES, ap_area) if not np.isnan(value)]
    return {
        "map_11point": 100.0 * mean_ignoring_nan(ap_11),
        "map_area": 100.0 * mean_ignoring_nan(ap_area),
        "per_class": {name: {"ap_11point": 100.0 * a, "ap_area": 100.0 * b}
                      for name, a, b in zip(VOC_CLASSES, ap_11, ap_area) if not np.isnan(b)},
        "classes_evaluated": present,
        "test_images": int(len(indices)),
    }


def _split(folder: Path, split: str, limit: int | None) -> tuple[list[str], np.ndarray]:
    ids = devkit.read_split(folder, split)
    ids = ids[:limit] if limit else ids
    return ids, devkit.classification_labels(devkit.read_annotations(folder, ids))


def run_voc_classification(out: str, options: ClassificationOptions, resume: bool = False) -> dict[str, Any]:
    """Fine-tune (or train the head on the frozen trunk), evaluate on the test split, write ``OUT/voc_cls.json``."""
    started = time.perf_counter()
    run = TransferRun(TASK, out, options, resume)
    folder = devkit.open_year(options.voc_root, options.year, (options.train_split, options.test_split),
                              options.download)
    train_ids, train_labels = _split(folder, options.train_split, options.max_train)
    test_ids, test_labels = _split(folder, options.test_split, options.max_test)
    trunk, origin = load_trunk(options.checkpoint, options.init, options.seed)
    trunk.requires_grad_(not options.freeze_trunk)
    model = VOCClassifier(trunk, options.image_size, options.hidden)
    log.info("%s: %d training images (%s), %d test images (%s), trunk from %s%s, %s", TASK, len(train_ids),
             options.train_split, len(test_ids), options.test_split, origin,
             " (frozen)" if options.freeze_trunk else "", run.runtime.describe())
    train_set = VOCClassificationSet(folder, train_ids, train_labels, train_transform(options.image_size))
    test_set = VOCClassificationSet(folder, test_ids, test_labels, evaluation_transform(options.image_size,
                                                                                   options.test_crops))
    train_loader = run.loader(train_set, options.batch_size, shuffle=True, collate=collate)
    test_loader = run.loader(test_set, max(1, options.batch_size // options.test_crops), shuffle=False,
                             collate=collate)

    def step(network: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, labels, _ = batch
        logits = network(images.to(run.device, non_blocking=True))
        return {"loss": multilabel_loss(logits, labels.to(run.device))}

    def interim(epoch: int) -> dict[str, float]:
        result = evaluate(model, test_loader, test_labels, run)
        return {"test_map_11point": result["map_11point"], "test_map_area": result["map_area"]}

    run.fit(model, trunk, train_loader, step, interim, eval_every=max(1, options.epochs // 4))
    result = evaluate(model, test_loader, test_labels, run)
    return run.finish(result, origin, len(train_ids), started, print_table, image_size=options.image_size)


def print_table(result: dict[str, Any]) -> None:
    print_ap_table(f"VOC{result['year']} classification ({result['test_split']}, {result['test_images']} images)",
                   result, "map_11point", "map_area")
