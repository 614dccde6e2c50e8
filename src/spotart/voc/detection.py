"""``spotart voc-det``: PASCAL VOC 2007 object detection, trainval -> test, mAP at IoU 0.5 as the devkit scores it.

Faster R-CNN (torchvision's ``FasterRCNN``) on the transferred conv1..conv5: conv5 (256 channels, stride 16) feeds
the region proposal network (anchors of 64..512 px at 3 aspect ratios at the 600 px scale) and a 6x6 RoIAlign
(pool5's size in AlexNet) that feeds fc6 and fc7 (4096 wide, ReLU, dropout 0.5, as AlexNet and py-faster-rcnn's
heads) and the 21-way classifier and per-class box regressor. Training follows py-faster-rcnn: one scale (shorter
side 600, longer at most 1000), random horizontal flips, "difficult" objects left out of the targets (images with
nothing else are skipped). ``--freeze-trunk`` trains only the RPN and the heads on frozen conv1..conv5.

Scoring is ``VOCevaldet.m``'s: up to 100 detections per image (score above 0.001) in the devkit's 1-based,
inclusive box coordinates; a detection of a difficult object is ignored, neither a hit nor a false alarm. The
headline number is the 11-point mAP of the VOC2007 devkit; the area under the curve (VOC2010+) is reported too.

Mixed precision: with bf16 autocast only the two heavy parts run in bf16, the trunk and fc6/fc7, each returning
fp32; the RPN, the box coding, RoIAlign, the predictors and the losses run in fp32. Under a whole-model autocast
torchvision's ``BoxCoder.decode`` casts the anchors to the regression outputs' bf16 (8 significant bits: a corner at
x = 900 moves in steps of 4 px), the detections come back in bf16, and in a check on one 600 px batch the RPN's box
loss moved by 12% against fp32.
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
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.transforms.functional import to_tensor

from ..models import Trunk
from . import devkit
from .engine import TransferOptions, TransferRun, gather_by_index, load_trunk, print_ap_table
from .metrics import VOC_CLASSES, Detection, GroundTruth, detection_ap, mean_ignoring_nan

log = logging.getLogger("spotart")

TASK = "voc-det"
NUM_CLASSES = len(VOC_CLASSES) + 1  # torchvision's label 0 is the background
ANCHOR_SCALE = 600  # the shorter side at which ``anchor_sizes`` are given (Faster R-CNN's)
ROI_SIZE = 6  # RoIAlign output: AlexNet's pool5 is 6x6
SCORE_THRESH = 0.001  # keep nearly every detection (up to detections_per_image): low scores only add recall


@dataclass
class DetectionOptions(TransferOptions):
    year: str = "2007"
    train_split: str = "trainval"
    test_split: str = "test"
    min_size: int = 600  # shorter image side (Fast/Faster R-CNN's single scale) ...
    max_size: int = 1000  # ... unless the longer side would exceed this
    hidden: int = 4096  # fc6 and fc7 width
    dropout: float = 0.5  # after fc6 and fc7
    anchor_sizes: tuple[float, ...] = (64.0, 128.0, 256.0, 512.0)  # at min_size 600; scaled with min_size
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_batch_size: int = 256  # anchors sampled per image for the RPN loss
    rpn_pre_nms_train: int = 12000  # top-scoring anchors per image that go into the RPN's NMS (py-faster-rcnn's)
    rpn_pre_nms_test: int = 6000
    rpn_proposals_train: int = 2000  # proposals kept after NMS per image (py-faster-rcnn: 2000 / 300)
    rpn_proposals_test: int = 300
    roi_batch_size: int = 128  # RoIs sampled per image for the head's loss (py-faster-rcnn), a quarter foreground
    detections_per_image: int = 100
    flip: bool = True  # random horizontal flips in training
    eval_every: int = 0  # also evaluate on the test split every N epochs (0: only at the end)
    # 20 epochs of VOC07 trainval (5011 images, 2 per step) are ~50k steps, 100k images: Faster R-CNN trained 80k
    # single-image steps (16 epochs; 70k in py-faster-rcnn's end-to-end recipe), with the learning rate 10x lower
    # for the last quarter. A trunk that starts from self-supervised (or random) weights gets a little longer.
    epochs: int = 20
    batch_size: int = 2  # images per process and step
    lr: float = 0.01  # SGD; 4x Detectron's linear scaling (0.02 per 16 images); fine-tunes stably on the toy set
    lr_steps: tuple[float, ...] = (0.75,)  # Faster R-CNN: 60k of 80k steps, then 10x lower
    max_train: int | None = None  # the first N images of the split (a quick check); None: all
    max_test: int | None = None

    def check(self) -> None:
        super().check()
        problems = []
        if self.min_size < 32 or self.max_size < self.min_size:
            problems.append("min size must be >= 32 and max size >= min size")
        if self.hidden <= 0 or not 0 <= self.dropout < 1:
            problems.append("hidden must be positive and dropout in [0, 1)")
        if not self.anchor_sizes or not self.anchor_ratios or min(*self.anchor_sizes, *self.anchor_ratios) <= 0:
            problems.append("anchor sizes and ratios must be positive (and not empty)")
        if min(self.rpn_batch_size, self.rpn_pre_nms_train, self.rpn_pre_nms_test, self.rpn_proposals_train,
               self.rpn_proposals_test, self.roi_batch_size, self.detections_per_image) <= 0:
            problems.append("RPN and RoI sample sizes, proposal and detection counts must be positive")
        if self.eval_every < 0:
            problems.append("eval every must be >= 0")
        if any(limit is not None and limit <= 0 for limit in (self.max_train, self.max_test)):
            problems.append("max train / max test must be positive (or unset)")
        if problems:
            raise ValueError("; ".join(problems))

    def scaled_anchor_sizes(self) -> tuple[float, ...]:
        """``anchor_sizes`` for images whose shorter side is ``min_size`` rather than 600."""
        return tuple(round(size * self.min_size / ANCHOR_SCALE, 1) for size in self.anchor_sizes)


# ------------------------------------------------------------------------------------------------------- data
def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Torchvision boxes (0-based, end-exclusive) of an image of ``width`` px, mirrored left-right with it."""
    out = boxes.copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def training_targets(ann: devkit.Annotation) -> tuple[np.ndarray, np.ndarray]:
    """Torchvision boxes and labels (1..20) of the objects to learn: the non-difficult ones (as py-faster-rcnn)."""
    keep = ~ann.difficult
    return devkit.to_torchvision_boxes(ann.boxes[keep]), ann.labels[keep] + 1


def training_annotations(annotations: list[devkit.Annotation]) -> list[devkit.Annotation]:
    """The images with at least one non-difficult object: the others have nothing to learn and are skipped."""
    return [ann for ann in annotations if (~ann.difficult).any()]


def ground_truth(ann: devkit.Annotation) -> GroundTruth:
    """Every object of the image, difficult ones flagged (they are ignored in scoring, not dropped)."""
    return GroundTruth(ann.image_id, ann.boxes, ann.labels, ann.difficult)


class VOCDetectionSet(torch.utils.data.Dataset):
    """(image in [0, 1], target, index); target = torchvision boxes and labels 1..20 of the non-difficult objects.

    An unreadable image comes back as None and is dropped by ``collate``. ``flip``: mirror half of the images (and
    their boxes) at random.
    """

    def __init__(self, folder: Path, annotations: list[devkit.Annotation], flip: bool = False) -> None:
        self.folder, self.annotations, self.flip = folder, annotations, flip

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], int] | None:
        ann = self.annotations[index]
        image = devkit.load_image(self.folder, ann.image_id)
        if image is None:
            return None
        tensor = to_tensor(image)
        boxes, labels = training_targets(ann)
        if self.flip and bool(torch.rand(()) < 0.5):
            tensor = tensor.flip(-1)
            boxes = flip_boxes(boxes, tensor.shape[-1])
        return tensor, {"boxes": torch.from_numpy(boxes).float(), "labels": torch.from_numpy(labels).long()}, index


def collate(items: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], torch.Tensor] | None:
    items = [item for item in items if item is not None]
    if not items:
        return None
    images, targets, indices = zip(*items)
    return list(images), list(targets), torch.tensor(indices)


# ------------------------------------------------------------------------------------------------------ model
class TrunkBackbone(nn.Module):
    """conv1..conv5 as a torchvision detection backbone: images in [-1, 1] -> conv5 (256 channels, stride 16), fp32.

    With ``autocast`` set (bf16) the trunk runs under autocast and its output is cast back to fp32.
    """

    out_channels = 256

    def __init__(self, trunk: Trunk, autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.trunk, self.autocast = trunk, autocast

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return self.trunk(images)
        with torch.autocast(images.device.type, dtype=self.autocast):
            return self.trunk(images).float()


class BoxHead(TwoMLPHead):
    """fc6 and fc7 on the pooled RoIs (ReLU, then dropout as AlexNet's), fp32 out (bf16 inside under ``autocast``)."""

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.5, autocast: torch.dtype | None = None
                 ) -> None:
        super().__init__(in_features, hidden)
        self.dropout, self.autocast = dropout, autocast

    def _layers(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.fc6(x.flatten(start_dim=1))), self.dropout, self.training)
        return F.dropout(F.relu(self.fc7(x)), self.dropout, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return self._layers(x)
        with torch.autocast(x.device.type, dtype=self.autocast):
            return self._layers(x).float()


def build_detector(trunk: Trunk, options: DetectionOptions, autocast: torch.dtype | None = None) -> FasterRCNN:
    """Faster R-CNN on ``trunk``: 21 classes, stride-16 anchors, 6x6 RoIAlign, fc6/fc7, at ``options``' scale.

    Images go in as [0, 1] tensors; torchvision's transform resizes them and maps them to the trunk's [-1, 1]
    (mean 0.5, std 0.5). ``autocast``: the dtype for the trunk and fc6/fc7 (see the module docstring).
    """
    o = options
    anchors = AnchorGenerator(sizes=(o.scaled_anchor_sizes(),), aspect_ratios=(tuple(o.anchor_ratios),))
    return FasterRCNN(
        TrunkBackbone(trunk, autocast), num_classes=None, min_size=o.min_size, max_size=o.max_size,
        image_mean=[0.5] * 3, image_std=[0.5] * 3,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=o.rpn_pre_nms_train, rpn_post_nms_top_n_train=o.rpn_proposals_train,
        rpn_pre_nms_top_n_test=o.rpn_pre_nms_test, rpn_post_nms_top_n_test=o.rpn_proposals_test,
        rpn_batch_size_per_image=o.rpn_batch_size,
        box_roi_pool=MultiScaleRoIAlign(["0"], ROI_SIZE, sampling_ratio=2),
        box_head=BoxHead(TrunkBackbone.out_channels * ROI_SIZE * ROI_SIZE, o.hidden, o.dropout, autocast),
        box_predictor=FastRCNNPredictor(o.hidden, NUM_CLASSES),
        box_score_thresh=SCORE_THRESH, box_detections_per_img=o.detections_per_image,
        box_batch_size_per_image=o.roi_batch_size,
    )


def detection_losses(model: nn.Module, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]],
                     device: torch.device) -> dict[str, torch.Tensor]:
    """Faster R-CNN's four losses and their sum (``"loss"``), outside any outer autocast (see the module docstring)."""
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [{key: value.to(device, non_blocking=True) for key, value in target.items()} for target in targets]
    with torch.autocast(device.type, enabled=False):
        losses = model(images, targets)
    losses = {key.removeprefix("loss_"): value for key, value in losses.items()}
    return {"loss": sum(losses.values()), **losses}


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def detect(model: nn.Module, loader: torch.utils.data.DataLoader, annotations: list[devkit.Annotation],
           device: torch.device) -> list[tuple[int, list[Detection]]]:
    """(image index, its detections in devkit coordinates) for every image this rank reads, all ranks gathered."""
    model.eval()
    rows: list[tuple[int, list[Detection]]] = []
    for batch in loader:
        if batch is None:
            continue
        images, _, indices = batch
        with torch.autocast(device.type, enabled=False):
            outputs = model([image.to(device, non_blocking=True) for image in images])
        for index, output in zip(indices.tolist(), outputs):
            image_id = annotations[index].image_id
            boxes = devkit.to_devkit_boxes(output["boxes"].float().cpu().numpy())
            labels = (output["labels"].cpu().numpy() - 1).tolist()  # torchvision 1..20 -> VOC_CLASSES index
            scores = output["scores"].float().cpu().numpy().tolist()
            rows.append((index, [Detection(image_id, label, score, tuple(float(v) for v in box))
                                 for box, label, score in zip(boxes, labels, scores)]))
    return gather_by_index(rows)


def score(rows: list[tuple[int, list[Detection]]], annotations: list[devkit.Annotation]) -> dict[str, Any]:
    """mAP of gathered detections over the images that were read (difficult objects ignored), in percent."""
    truth = [ground_truth(annotations[index]) for index, _ in rows]
    detections = [det for _, dets in rows for det in dets]
    ap_11 = detection_ap(detections, truth, len(VOC_CLASSES), 0.5, method="11point")
    ap_area = detection_ap(detections, truth, len(VOC_CLASSES), 0.5, method="area")
    present = [name for name, value in zip(VOC_CLASSES, ap_area) if not np.isnan(value)]
    return {
        "map": 100.0 * mean_ignoring_nan(ap_11),
        "map_area": 100.0 * mean_ignoring_nan(ap_area),
        "per_class": {name: {"ap_11point": 100.0 * a, "ap_area": 100.0 * b}
                      for name, a, b in zip(VOC_CLASSES, ap_11, ap_area) if not np.isnan(b)},
        "classes_evaluated": present,
        "test_images": len(rows),
        "detections": len(detections),
    }


def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, annotations: list[devkit.Annotation],
             device: torch.device) -> dict[str, Any]:
    return score(detect(model, loader, annotations, device), annotations)


# ------------------------------------------------------------------------------------------------------ the run
def _annotations(folder: Path, split: str, limit: int | None) -> list[devkit.Annotation]:
    ids = devkit.read_split(folder, split)
    return devkit.read_annotations(folder, ids[:limit] if limit else ids)


def run_voc_detection(out: str | Path, options: DetectionOptions, resume: bool = False) -> dict[str, Any]:
    """Fine-tune Faster R-CNN on the trunk (or train RPN and heads on it frozen), evaluate on the test split,
    write ``OUT/voc_det.json``."""
    started = time.perf_counter()
    run = TransferRun(TASK, out, options, resume)
    folder = devkit.open_year(options.voc_root, options.year, (options.train_split, options.test_split),
                              options.download)
    train_all = _annotations(folder, options.train_split, options.max_train)
    train_annotations = training_annotations(train_all)
    test_annotations = _annotations(folder, options.test_split, options.max_test)
    if not train_annotations:
        raise devkit.VOCError(f"{options.train_split} of {folder} has no image with a non-difficult object to train on")
    trunk, origin = load_trunk(options.checkpoint, options.init, options.seed)
    trunk.requires_grad_(not options.freeze_trunk)
    model = build_detector(trunk, options, run.runtime.dtype)
    log.info("%s: %d training images (%s; %d without a non-difficult object skipped), %d test images (%s), "
             "trunk from %s%s, %s", TASK, len(train_annotations), options.train_split,
             len(train_all) - len(train_annotations), len(test_annotations), options.test_split, origin,
             " (frozen)" if options.freeze_trunk else "", run.runtime.describe())
    train_set = VOCDetectionSet(folder, train_annotations, flip=options.flip)
    test_set = VOCDetectionSet(folder, test_annotations)
    train_loader = run.loader(train_set, options.batch_size, shuffle=True, collate=collate)
    test_loader = run.loader(test_set, options.batch_size, shuffle=False, collate=collate)

    def step(network: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        images, targets, _ = batch
        return detection_losses(network, images, targets, run.device)

    def interim(epoch: int) -> dict[str, float]:
        result = evaluate(model, test_loader, test_annotations, run.device)
        return {"test_map": result["map"], "test_map_area": result["map_area"]}

    run.fit(model, trunk, train_loader, step, interim, eval_every=options.eval_every)
    result = evaluate(model, test_loader, test_annotations, run.device)
    return run.finish(result, origin, len(train_annotations), started, print_table, min_size=options.min_size,
                      max_size=options.max_size)


def print_table(result: dict[str, Any]) -> None:
    print_ap_table(f"VOC{result['year']} detection ({result['test_split']}, {result['test_images']} images, AP at "
                   "IoU 0.5)", result, "map", "map_area")
