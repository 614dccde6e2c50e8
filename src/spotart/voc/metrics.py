"""PASCAL VOC metrics, computed as the official devkit computes them.

- ``average_precision``: the AP of a precision/recall curve. ``"11point"`` is VOC2007's interpolated AP (the loop
  at the end of VOC2007's ``VOCevalcls.m`` / ``VOCevaldet.m``, ``voc_ap(use_07_metric=True)`` in py-faster-rcnn's
  ``voc_eval.py``); ``"area"`` is VOC2010+'s ``VOCap.m`` (``voc_ap(use_07_metric=False)``).
- ``classification_ap``: ``VOCevalcls.m`` for every class at once.
- ``detection_ap``: ``VOCevaldet.m`` / ``voc_eval.py`` for every class at once.
- ``SegmentationConfusion``: the confusion matrix and per-class IoU of ``VOCevalseg.m``, accumulated batch by batch.

Two deliberate, documented choices where the references disagree or are ambiguous:

- Detection: a detection matches only when IoU > threshold, as in ``voc_eval.py``; the MATLAB ``VOCevaldet.m``
  uses ``>=``. The two differ only for an IoU of exactly the threshold.
- 11-point AP samples recall at exact tenths ``k / 10``. ``voc_eval.py`` uses ``np.arange(0, 1.1, 0.1)``, whose
  floating-point values 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001 lie above the recalls
  3/10, 6/10 and 7/10, so a recall of exactly 0.3 would not count for the 0.3 sample there.

Scores are ranked with a stable sort (ties keep input order), as MATLAB's ``sort`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

AP_METHODS = ("area", "11point")


def _check_method(method: str) -> None:
    if method not in AP_METHODS:
        raise ValueError(f"unknown AP method {method!r}: expected one of {', '.join(map(repr, AP_METHODS))}")


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "area") -> float:
    """AP of a precision/recall curve given as points in ranking order.

    ``method="11point"``: VOC2007's mean over t in 0, 0.1, ..., 1 of the highest precision at recall >= t (0 when
    recall never reaches t). ``method="area"``: VOC2010+'s area under the precision envelope (precision made
    monotonically decreasing in recall), summed where recall changes. A NaN precision (0/0 before anything was
    counted) is taken as 0, as ``voc_eval.py``'s ``eps`` guard does; it cannot raise either AP.
    """
    _check_method(method)
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if rec.ndim != 1 or prec.ndim != 1 or rec.shape != prec.shape:
        raise ValueError(
            f"recall and precision must be 1-D arrays of the same length, got shapes {rec.shape} and {prec.shape}"
        )
    if np.isnan(rec).any():
        raise ValueError("recall contains NaN (was it divided by a zero number of positives?)")
    prec = np.nan_to_num(prec, nan=0.0)

    if method == "11point":
        ap = 0.0
        for t in np.arange(11) / 10.0:  # exact tenths: see the module docstring
            above = rec >= t
            ap += (prec[above].max() if above.any() else 0.0) / 11.0
        return float(ap)

    # VOCap.m: sentinels at both ends, then the envelope from the right, so that each recall level gets the best
    # precision reachable at that recall or beyond.
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def _ranked_ap(scores: np.ndarray, is_tp: np.ndarray, npos: int, method: str) -> float:
    """AP of counted (not ignored) results: ``is_tp`` true for a TP, false for an FP, in any order of ``scores``.

    Ignored results (difficult) are left out by the callers rather than kept with tp = fp = 0 as the devkit keeps
    them: such a point repeats the previous (recall, precision), or is (0, 0/0) at the top of the ranking, so it
    changes neither AP. Dropping them avoids the 0/0.
    """
    if npos == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")  # MATLAB's sort is stable: ties keep input order
    hits = is_tp[order]
    tp = np.cumsum(hits, dtype=np.float64)
    fp = np.cumsum(~hits, dtype=np.float64)
    return average_precision(tp / npos, tp / (tp + fp), method)


def classification_ap(scores: np.ndarray, labels: np.ndarray, method: str = "area") -> np.ndarray:
    """Per-class AP of multi-label ``scores`` (N, C), as ``VOCevalcls.m`` for each class.

    ``labels`` (N, C): 1 the class is present, 0 only difficult instances (ignored, as the devkit's 0 label),
    -1 absent. Images are ranked by descending score; precision and recall count only non-ignored images. A
    class without a positive image gets NaN.
    """
    _check_method(method)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(
            f"scores and labels must both be (N, C) arrays of the same shape, got {scores.shape} and {labels.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN, which cannot be ranked")
    bad = ~np.isin(labels, (-1, 0, 1))
    if bad.any():
        raise ValueError(
            f"labels must be 1 (present), 0 (difficult, ignored) or -1 (absent); found {np.unique(labels[bad])[:5]}"
        )
    aps = np.empty(scores.shape[1], dtype=np.float64)
    for c in range(scores.shape[1]):
        counted = labels[:, c] != 0
        positive = labels[counted, c] == 1
        aps[c] = _ranked_ap(scores[counted, c], positive, int(positive.sum()), method)
    return aps


@dataclass
class Detection:
    image_id: str
    label: int  # class index
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in devkit pixels (1-based, inclusive), like GroundTruth


@dataclass
class GroundTruth:
    image_id: str
    boxes: np.ndarray  # (K, 4) x1, y1, x2, y2 in devkit pixel coordinates (1-based, inclusive)
    labels: np.ndarray  # (K,) int class index
    difficult: np.ndarray  # (K,) bool

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)  # an image without objects may come as an empty list
        self.boxes = boxes
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(-1)
        k = len(self.labels)
        if self.boxes.shape != (k, 4) or self.difficult.shape != (k,):
            raise ValueError(
                f"ground truth of image {self.image_id!r}: boxes must be (K, 4) with K labels and K difficult flags, "
                f"got boxes {self.boxes.shape}, labels {self.labels.shape}, difficult {self.difficult.shape}"
            )


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each of ``boxes`` (K, 4), in the devkit's inclusive pixels: a box spans x2 - x1 + 1.

    The +1 is the devkit's: corners name the first and last pixel, so (1, 1, 10, 10) covers 100 pixels.
    """
    iw = np.maximum(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]) + 1.0, 0.0)
    inter = iw * ih
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area + areas - inter)


def detection_ap(
    detections: Sequence[Detection],
    ground_truth: Sequence[GroundTruth],
    num_classes: int,
    iou_threshold: float = 0.5,
    method: str = "11point",
) -> np.ndarray:
    """Per-class AP of ``detections`` against ``ground_truth``, as ``voc_eval.py`` / ``VOCevaldet.m``.

    Per class, detections are taken by descending score. Each is compared with every ground-truth box of its class
    in its image and assigned to the one of highest IoU, matched or not (as the devkit does: a second detection
    whose best box is taken is a duplicate, even if it also overlaps another, free box). IoU > ``iou_threshold``:
    a difficult box makes the detection ignored (neither TP nor FP); otherwise TP if the box is still free (which
    takes it), FP if already taken. IoU <= threshold: FP. Recall is over the non-difficult boxes; a class without
    one gets NaN. Every detection's image must be in ``ground_truth`` (an image without objects has an entry with
    no boxes), as the devkit rejects unknown images.
    """
    _check_method(method)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    by_image: dict[str, GroundTruth] = {}
    for gt in ground_truth:
        if gt.image_id in by_image:
            raise ValueError(f"image {gt.image_id!r} appears twice in the ground truth")
        if len(gt.labels) and (gt.labels.min() < 0 or gt.labels.max() >= num_classes):
            raise ValueError(
                f"ground truth of image {gt.image_id!r} has a label outside [0, {num_classes}): {gt.labels.tolist()}"
            )
        by_image[gt.image_id] = gt
    per_class: list[list[Detection]] = [[] for _ in range(num_classes)]
    for det in detections:
        if det.image_id not in by_image:
            raise ValueError(f"detection on unrecognized image {det.image_id!r}: it has no ground-truth entry")
        if not 0 <= det.label < num_classes:
            raise ValueError(f"detection label {det.label} on image {det.image_id!r} is outside [0, {num_classes})")
        if len(det.box) != 4:
            raise ValueError(f"detection box must be (x1, y1, x2, y2), got {det.box!r} on image {det.image_id!r}")
        per_class[det.label].append(det)

    aps = np.empty(num_classes, dtype=np.float64)
    for c in range(num_classes):
        # The class's boxes per image, and whether each is taken yet (fresh for every class).
        boxes = {i: gt.boxes[gt.labels == c] for i, gt in by_image.items()}
        hard = {i: gt.difficult[gt.labels == c] for i, gt in by_image.items()}
        taken = {i: np.zeros(len(b), dtype=bool) for i, b in boxes.items()}
        npos = int(sum(int((~h).sum()) for h in hard.values()))
        dets = per_class[c]
        scores = np.array([d.score for d in dets], dtype=np.float64)
        # Matching must follow the ranking, since an earlier detection takes a box from a later one.
        order = np.argsort(-scores, kind="stable")
        counted_scores, is_tp = [], []
        for k in order:
            det = dets[k]
            gt_boxes = boxes[det.image_id]
            if len(gt_boxes):
                ov = _overlaps(np.asarray(det.box, dtype=np.float64), gt_boxes)
                j = int(np.argmax(ov))  # the first of equal IoUs, as the devkit's strict ``ov > ovmax``
                best = ov[j]
            else:
                best = -math.inf
            if best > iou_threshold:
                if hard[det.image_id][j]:
                    continue  # a detection of a difficult object neither helps nor hurts
                hit = not taken[det.image_id][j]
                taken[det.image_id][j] = True
            else:
                hit = False
            counted_scores.append(scores[k])
            is_tp.append(hit)
        aps[c] = _ranked_ap(np.asarray(counted_scores, dtype=np.float64), np.asarray(is_tp, dtype=bool), npos, method)
    return aps


class SegmentationConfusion:
    """A ``num_classes`` x ``num_classes`` pixel confusion matrix (rows: truth, columns: prediction), as
    ``VOCevalseg.m`` accumulates it, over any number of batches.

    Pixels whose target is ``ignore_index`` (VOC's 255: object borders and void) are not counted, whatever their
    prediction. Updates take CPU or GPU integer tensors; the counts are kept as int64 on the CPU, where they are
    exact and cheap to merge across processes.
    """

    def __init__(self, num_classes: int = 21, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class index in [0, {num_classes})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    @property
    def matrix(self) -> torch.Tensor:
        """The counts so far, int64 on the CPU (a copy: changing it does not change the accumulator)."""
        return self._matrix.clone()

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: ``prediction`` and ``target`` (N, H, W) or (H, W) integer class indices."""
        prediction, target = torch.as_tensor(prediction), torch.as_tensor(target)
        for name, t in (("prediction", prediction), ("target", target)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise ValueError(f"{name} must be an integer tensor of class indices, got dtype {t.dtype}")
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(prediction.shape)} does not match target shape {tuple(target.shape)}"
            )
        if target.dim() not in (2, 3):
            raise ValueError(f"prediction and target must be (N, H, W) or (H, W), got shape {tuple(target.shape)}")
        if prediction.device != target.device:
            raise ValueError(f"prediction is on {prediction.device} but target on {target.device}")
        n = self.num_classes
        # int64 before any arithmetic: uint8 would wrap at n * target + prediction.
        pred = prediction.reshape(-1).long()
        true = target.reshape(-1).long()
        keep = true != self.ignore_index
        pred, true = pred[keep], true[keep]
        # An out-of-range index would land silently in another cell of the flattened matrix.
        if ((true < 0) | (true >= n)).any():
            bad = torch.unique(true[(true < 0) | (true >= n)])[:5].tolist()
            raise ValueError(f"target has values {bad} outside [0, {n}) that are not ignore_index {self.ignore_index}")
        if ((pred < 0) | (pred >= n)).any():
            bad = torch.unique(pred[(pred < 0) | (pred >= n)])[:5].tolist()
            raise ValueError(f"prediction has values {bad} outside [0, {n})")
        counts = torch.bincount(true * n + pred, minlength=n * n).reshape(n, n)
        self._matrix += counts.cpu()

    def merge(self, other: SegmentationConfusion) -> None:
        """Add ``other``'s counts (e.g. another rank's, after a gather)."""
        if not isinstance(other, SegmentationConfusion):
            raise ValueError(f"can only merge another SegmentationConfusion, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge a confusion of {other.num_classes} classes (ignore_index {other.ignore_index}) "
                f"into one of {self.num_classes} classes (ignore_index {self.ignore_index})"
            )
        self._matrix += other.matrix.to(device="cpu", dtype=torch.int64)

    def iou(self) -> np.ndarray:
        """Per-class IoU = TP / (TP + FP + FN), ``VOCevalseg.m``'s accuracies (as fractions, not percent).

        NaN for a class that appears in neither truth nor prediction: its IoU is undefined, not 0.
        """
        m = self._matrix.double().numpy()
        tp = np.diag(m)
        union = m.sum(axis=0) + m.sum(axis=1) - tp
        out = np.full(self.num_classes, math.nan)
        np.divide(tp, union, out=out, where=union > 0)
        return out

    def mean_iou(self) -> float:
        """Mean IoU over the classes that appear (in truth or prediction); NaN before any pixel was counted."""
        return mean_ignoring_nan(self.iou())

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly; NaN before any pixel was counted."""
        total = int(self._matrix.sum())
        return float(self._matrix.trace()) / total if total else math.nan


def mean_ignoring_nan(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN (without numpy's "mean of empty slice" warning) when there is none."""
    arr = np.asarray(values, dtype=np.float64)
    present = arr[~np.isnan(arr)]
    return float(present.mean()) if present.size else math.nan
