"""VOC metrics against values computed by hand, and against literal ports of the devkit's loops."""

import math
import warnings

import numpy as np
import pytest
import torch

from spotart.voc.metrics import (
    VOC_CLASSES,
    Detection,
    GroundTruth,
    SegmentationConfusion,
    _overlaps,
    average_precision,
    classification_ap,
    detection_ap,
    mean_ignoring_nan,
)

METHODS = ("area", "11point")

# The ranking P, N, P with 2 positives: recall (0.5, 0.5, 1), precision (1, 1/2, 2/3).
#   area: the envelope is 1 up to recall 0.5, then 2/3 up to 1: 0.5 * 1 + 0.5 * 2/3 = 5/6.
#   11point: t = 0, 0.1, ..., 0.5 (6 values) reach precision 1; t = 0.6, ..., 1 (5 values) only the last point,
#   2/3: (6 * 1 + 5 * 2/3) / 11 = 28/33.
PNP_AREA, PNP_11POINT = 5 / 6, 28 / 33


def test_voc_classes_in_devkit_order():
    assert len(VOC_CLASSES) == 20 and len(set(VOC_CLASSES)) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[10] == "diningtable" and VOC_CLASSES[19] == "tvmonitor"
    assert VOC_CLASSES.index("person") == 14


# --- average_precision ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_perfect_curve_has_ap_one(method):
    assert average_precision(np.array([0.5, 1.0, 1.0]), np.array([1.0, 1.0, 2 / 3]), method) == pytest.approx(1.0)


def test_hand_computed_pnp_curve_differs_between_methods():
    rec, prec = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    assert average_precision(rec, prec, "area") == pytest.approx(PNP_AREA)
    assert average_precision(rec, prec, "11point") == pytest.approx(PNP_11POINT)


def test_area_uses_the_precision_envelope():
    # Recall 0.25 at precision 0.1, then 0.5 at 0.9: the envelope raises the first step to 0.9, so
    # AP = 0.25 * 0.9 + 0.25 * 0.9 = 0.45 (the raw curve would give 0.25 * 0.1 + 0.25 * 0.9 = 0.25).
    assert average_precision(np.array([0.25, 0.5]), np.array([0.1, 0.9]), "area") == pytest.approx(0.45)


def test_11point_counts_a_recall_of_exactly_three_tenths_at_t_03():
    # Recall 3/10 at precision 1, then recall 1 at 0.5: t = 0, ..., 0.3 (4 values) get 1, the 7 others 0.5:
    # (4 + 3.5) / 11 = 15/22. With np.arange(0, 1.1, 0.1) the sample 0.30000000000000004 would miss 3/10: 7/11.
    rec, prec = np.array([3, 10]) / 10, np.array([1.0, 0.5])
    assert average_precision(rec, prec, "11point") == pytest.approx(15 / 22)


def test_11point_gives_zero_where_recall_never_reaches_t():
    # Recall stops at 0.45 with precision 1: t = 0, ..., 0.4 (5 values) get 1, the rest 0.
    assert average_precision(np.array([0.45]), np.array([1.0]), "11point") == pytest.approx(5 / 11)
    assert average_precision(np.array([0.45]), np.array([1.0]), "area") == pytest.approx(0.45)


@pytest.mark.parametrize("method", METHODS)
def test_empty_curve_has_ap_zero(method):
    assert average_precision(np.array([]), np.array([]), method) == 0.0


def test_average_precision_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown AP method 'voc07'"):
        average_precision(np.array([1.0]), np.array([1.0]), "voc07")
    with pytest.raises(ValueError, match="same length"):
        average_precision(np.array([0.5, 1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="recall contains NaN"):
        average_precision(np.array([math.nan]), np.array([1.0]))


# --- classification_ap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_classification_perfect_ranking(method):
    scores = np.array([[0.9], [0.8], [0.1]])
    labels = np.array([[1], [1], [-1]])
    assert classification_ap(scores, labels, method)[0] == pytest.approx(1.0)


def test_classification_hand_computed_ranking():
    # Ranked by score: P (0.9), N (0.7), P (0.4), N (0.2): the P, N, P curve, then a point at recall 1 with a lower
    # precision (2/4) that the envelope and the 11-point max both ignore.
    scores = np.array([[0.4], [0.9], [0.2], [0.7]])
    labels = np.array([[1], [1], [-1], [-1]])
    assert classification_ap(scores, labels, "area")[0] == pytest.approx(PNP_AREA)
    assert classification_ap(scores, labels, "11point")[0] == pytest.approx(PNP_11POINT)


@pytest.mark.parametrize("method", METHODS)
def test_classification_difficult_images_are_ignored(method):
    scores = np.array([[0.4], [0.9], [0.2], [0.7]])
    labels = np.array([[1], [1], [-1], [-1]])
    base = classification_ap(scores, labels, method)[0]
    # A difficult image at the top, and one between the two positives: as negatives they would lower AP.
    more_scores = np.vstack([scores, [[1.0]], [[0.5]]])
    more_labels = np.vstack([labels, [[0]], [[0]]])
    assert classification_ap(more_scores, more_labels, method)[0] == pytest.approx(base)
    assert classification_ap(more_scores, np.where(more_labels == 0, -1, more_labels), method)[0] < base - 0.1


def test_classification_per_class_and_nan_without_positives():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.6]])
    labels = np.array([[1, 1, -1], [-1, -1, 0]])
    aps = classification_ap(scores, labels)
    assert aps[0] == pytest.approx(1.0)
    assert aps[1] == pytest.approx(0.5)  # ranked N, P: recall 1 at precision 1/2
    assert math.isnan(aps[2])


def test_classification_ties_keep_input_order():
    # Equal scores: MATLAB's stable sort ranks the negative (first) before the positive, so AP is 1/2, not 1.
    assert classification_ap(np.array([[0.5], [0.5]]), np.array([[-1], [1]]))[0] == pytest.approx(0.5)


def test_classification_rejects_bad_input():
    with pytest.raises(ValueError, match="labels must be 1 .* found \\[2\\]"):
        classification_ap(np.zeros((2, 1)), np.array([[1], [2]]))
    with pytest.raises(ValueError, match="same shape"):
        classification_ap(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="same shape"):
        classification_ap(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="unknown AP method"):
        classification_ap(np.zeros((2, 1)), np.ones((2, 1)), "trapezoid")
    with pytest.raises(ValueError, match="NaN"):
        classification_ap(np.array([[math.nan]]), np.ones((1, 1)))


def _devkit_cls_ap(confidence, gt, method):
    """VOCevalcls.m line by line: difficult (0) images stay in the ranking with tp = fp = 0, MATLAB's max ignores
    the resulting NaN precision."""
    si = np.argsort(-confidence, kind="stable")
    tp = np.cumsum(gt[si] > 0)
    fp = np.cumsum(gt[si] < 0)
    rec = tp / np.sum(gt > 0)
    with np.errstate(invalid="ignore"):
        prec = tp / (fp + tp)
    if method == "11point":
        ap = 0.0
        for t in np.arange(11) / 10:
            p = prec[rec >= t]
            ap += (np.nanmax(p) if p.size and not np.isnan(p).all() else 0.0) / 11
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = np.fmax(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


@pytest.mark.parametrize("method", METHODS)
def test_classification_matches_a_literal_devkit_port(method):
    rng = np.random.default_rng(0)
    scores = rng.random((60, 5)).round(2)  # rounding makes ties
    labels = rng.choice([-1, -1, 0, 1], size=(60, 5))
    expected = [_devkit_cls_ap(scores[:, c], labels[:, c], method) for c in range(5)]
    np.testing.assert_allclose(classification_ap(scores, labels, method), expected, rtol=0, atol=1e-12)


# --- detection_ap --------------------------------------------------------------------------------------------


def _gt(image_id, boxes, labels=None, difficult=None):
    k = len(boxes)
    return GroundTruth(
        image_id,
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.zeros(k, dtype=np.int64) if labels is None else np.array(labels),
        np.zeros(k, dtype=bool) if difficult is None else np.array(difficult),
    )


def test_overlaps_use_the_plus_one_pixel_convention():
    # (1, 1, 10, 10) covers 100 pixels: a single pixel inside it has IoU 1/100 (0 without the +1).
    box = np.array([1.0, 1.0, 10.0, 10.0])
    ov = _overlaps(box, np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 10.0, 10.0], [11.0, 1.0, 20.0, 10.0]]))
    np.testing.assert_allclose(ov, [0.01, 1.0, 0.0])
    # (1, 1, 10, 5) is half of it: 50 / 100 (without the +1: 36 / 81).
    assert _overlaps(box, np.array([[1.0, 1.0, 10.0, 5.0]]))[0] == pytest.approx(0.5)


@pytest.mark.parametrize("method", METHODS)
def test_detection_perfect(method):
    gts = [_gt("a", [[1, 1, 10, 10]]), _gt("b", [[5, 5, 50, 40], [60, 60, 90, 90]])]
    dets = [
        Detection("a", 0, 0.9, (1, 1, 10, 10)),
        Detection("b", 0, 0.8, (6, 5, 50, 41)),
        Detection("b", 0, 0.7, (60, 60, 90, 90)),
    ]
    assert detection_ap(dets, gts, 1, method=method)[0] == pytest.approx(1.0)


def test_detection_iou_exactly_at_threshold_is_not_a_match():
    # IoU of (1, 1, 10, 5) with (1, 1, 10, 10) is exactly 50/100; the devkit (voc_eval.py) needs IoU > threshold.
    gts = [_gt("a", [[1, 1, 10, 10]])]
    dets = [Detection("a", 0, 0.9, (1, 1, 10, 5))]
    assert detection_ap(dets, gts, 1, iou_threshold=0.5)[0] == 0.0
    # Just below 0.5 it matches; without the +1 the IoU would be 36/81 = 0.44 and this would fail too.
    assert detection_ap(dets, gts, 1, iou_threshold=0.49)[0] == pytest.approx(1.0)


def test_detection_duplicate_is_a_false_positive():
    # Image a is detected twice (0.9, 0.8), image b once (0.7): TP, FP, TP is the P, N, P curve.
    gts = [_gt("a", [[1, 1, 10, 10]]), _gt("b", [[20, 20, 40, 40]])]
    dets = [
        Detection("a", 0, 0.9, (1, 1, 10, 10)),
        Detection("a", 0, 0.8, (1, 1, 10, 11)),
        Detection("b", 0, 0.7, (20, 20, 40, 40)),
    ]
    assert detection_ap(dets, gts, 1, method="area")[0] == pytest.approx(PNP_AREA)
    assert detection_ap(dets, gts, 1, method="11point")[0] == pytest.approx(PNP_11POINT)


def test_detection_goes_to_the_best_box_even_if_it_is_taken():
    # Two nested boxes: (1, 1, 10, 10) and (1, 1, 10, 12) (IoU 100/120). The second detection of the first box has
    # IoU 1 with it and 0.83 with the free one; the devkit assigns it to the best, taken box: FP. So the ranking is
    # TP, FP over 2 positives: recall (0.5, 0.5), 11-point AP 6/11 (1 for t <= 0.5), area 0.5.
    gts = [_gt("a", [[1, 1, 10, 10], [1, 1, 10, 12]])]
    dets = [Detection("a", 0, 0.9, (1, 1, 10, 10)), Detection("a", 0, 0.8, (1, 1, 10, 10))]
    assert detection_ap(dets, gts, 1, method="11point")[0] == pytest.approx(6 / 11)
    assert detection_ap(dets, gts, 1, method="area")[0] == pytest.approx(0.5)


@pytest.mark.parametrize("method", METHODS)
def test_detection_on_a_difficult_box_is_ignored(method):
    # The top detection hits a difficult box: as an FP it would give AP 1/2, and counting the difficult box as a
    # positive would cap recall at 1/2. Ignored, the remaining TP gives AP 1.
    gts = [_gt("a", [[1, 1, 10, 10]]), _gt("b", [[1, 1, 10, 10]], difficult=[True])]
    dets = [Detection("b", 0, 0.95, (1, 1, 10, 10)), Detection("a", 0, 0.9, (1, 1, 10, 10))]
    assert detection_ap(dets, gts, 1, method=method)[0] == pytest.approx(1.0)


def test_detection_classes_are_separate_and_nan_without_positives():
    gts = [
        _gt("a", [[1, 1, 10, 10], [20, 20, 30, 30]], labels=[0, 1]),
        _gt("b", [[1, 1, 10, 10]], labels=[2], difficult=[True]),
        _gt("empty", []),
    ]
    dets = [
        Detection("a", 1, 0.9, (1, 1, 10, 10)),  # class 1 on the class-0 box: FP for class 1
        Detection("a", 1, 0.8, (20, 20, 30, 30)),
        Detection("empty", 0, 0.99, (1, 1, 10, 10)),  # FP on an image without objects
        Detection("a", 0, 0.5, (1, 1, 10, 10)),
        Detection("b", 2, 0.5, (1, 1, 10, 10)),
    ]
    aps = detection_ap(dets, gts, 4, method="area")
    assert aps[0] == pytest.approx(0.5)  # FP then TP: recall 1 at precision 1/2
    assert aps[1] == pytest.approx(0.5)
    assert math.isnan(aps[2])  # only a difficult box
    assert math.isnan(aps[3])  # no box at all
    assert detection_ap([], gts[:1], 2).tolist() == [0.0, 0.0]  # positives but no detection


def test_detection_rejects_bad_input():
    gts = [_gt("a", [[1, 1, 10, 10]])]
    with pytest.raises(ValueError, match="unrecognized image 'zz'"):
        detection_ap([Detection("zz", 0, 0.5, (1, 1, 2, 2))], gts, 1)
    with pytest.raises(ValueError, match="detection label 3 .* outside \\[0, 2\\)"):
        detection_ap([Detection("a", 3, 0.5, (1, 1, 2, 2))], gts, 2)
    with pytest.raises(ValueError, match="label outside \\[0, 1\\)"):
        detection_ap([], [_gt("b", [[1, 1, 2, 2]], labels=[1])], 1)
    with pytest.raises(ValueError, match="appears twice"):
        detection_ap([], gts + gts, 1)
    with pytest.raises(ValueError, match="unknown AP method"):
        detection_ap([], gts, 1, method="coco")
    with pytest.raises(ValueError, match="boxes must be \\(K, 4\\)"):
        GroundTruth("c", np.zeros((2, 4)), np.zeros(3, dtype=np.int64), np.zeros(2, dtype=bool))


def _voc_eval_port(dets, gts, cls, ovthresh, method):
    """py-faster-rcnn's voc_eval.py for one class, line by line (difficult detections stay in with tp = fp = 0)."""
    class_recs, npos = {}, 0
    for g in gts:
        m = g.labels == cls
        class_recs[g.image_id] = {"bbox": g.boxes[m], "difficult": g.difficult[m], "det": [False] * int(m.sum())}
        npos += int((~g.difficult[m]).sum())
    dets = [d for d in dets if d.label == cls]
    confidence = np.array([d.score for d in dets])
    sorted_ind = np.argsort(-confidence, kind="stable")
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for d, k in enumerate(sorted_ind):
        r = class_recs[dets[k].image_id]
        bb = np.array(dets[k].box, dtype=float)
        ovmax, bbgt = -np.inf, r["bbox"].astype(float)
        if bbgt.size > 0:
            iw = np.maximum(np.minimum(bbgt[:, 2], bb[2]) - np.maximum(bbgt[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(bbgt[:, 3], bb[3]) - np.maximum(bbgt[:, 1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            uni = (
                (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0)
                - inters
            )
            overlaps = inters / uni
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > ovthresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.0
                    r["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return _voc_ap(rec, prec, method)


def _voc_ap(rec, prec, method):
    """voc_eval.py's voc_ap, with exact tenths for the 11 samples (see the module docstring)."""
    if method == "11point":
        return sum((prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11 for t in np.arange(11) / 10)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


@pytest.mark.parametrize("method", METHODS)
def test_detection_matches_a_literal_voc_eval_port(method):
    rng = np.random.default_rng(1)
    gts, dets = [], []
    for i in range(30):
        k = int(rng.integers(0, 5))
        xy = rng.integers(1, 60, size=(k, 2))
        boxes = np.hstack([xy, xy + rng.integers(8, 30, size=(k, 2))]).astype(np.float32)
        labels, difficult = rng.integers(0, 3, size=k), rng.random(k) < 0.25
        gts.append(GroundTruth(f"img{i}", boxes, labels, difficult))
        for box, label in zip(boxes, labels):
            for _ in range(int(rng.integers(0, 3))):  # 0 to 2 jittered copies: misses, hits and duplicates
                jitter = rng.integers(-3, 4, size=4)
                dets.append(Detection(f"img{i}", int(label), round(float(rng.random()), 2), tuple(box + jitter)))
        for _ in range(int(rng.integers(0, 3))):  # background false positives
            x, y = rng.integers(1, 60, size=2)
            dets.append(Detection(f"img{i}", int(rng.integers(0, 3)), float(rng.random()), (x, y, x + 10, y + 10)))
    got = detection_ap(dets, gts, 3, method=method)
    expected = [_voc_eval_port(dets, gts, c, 0.5, method) for c in range(3)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert 0.0 < np.nanmin(got) and np.nanmax(got) < 1.0  # the data exercise both hits and misses


# --- SegmentationConfusion -----------------------------------------------------------------------------------

# Target / prediction with two ignored pixels whose predictions (2 and 0) would change every number if counted.
# Counted (truth, prediction) pairs: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0); rows truth, columns prediction:
#   [[1, 1, 0],      IoU 0 = 1 / (2 + 2 - 1) = 1/3
#    [0, 2, 0],      IoU 1 = 2 / (2 + 3 - 2) = 2/3
#    [1, 0, 1]]      IoU 2 = 1 / (2 + 1 - 1) = 1/2;  mean 1/2, pixel accuracy 4/6
TARGET = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
PREDICTION = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])


def test_segmentation_known_confusion():
    conf = SegmentationConfusion(num_classes=3)
    conf.update(PREDICTION, TARGET)
    assert conf.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert conf.matrix.dtype == torch.int64 and conf.matrix.device.type == "cpu"
    np.testing.assert_allclose(conf.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert conf.mean_iou() == pytest.approx(0.5)
    assert conf.pixel_accuracy() == pytest.approx(4 / 6)


def test_segmentation_ignored_pixels_do_not_count():
    conf = SegmentationConfusion(num_classes=3)
    conf.update(PREDICTION, TARGET)
    everything_ignored = torch.full_like(TARGET, 255)
    conf.update(PREDICTION, everything_ignored)
    assert int(conf.matrix.sum()) == 6
    # The prediction may be anything (even out of range) where the target is ignored.
    conf.update(torch.full_like(TARGET, 99), everything_ignored)
    assert int(conf.matrix.sum()) == 6


def test_segmentation_mean_over_present_classes_only():
    conf = SegmentationConfusion(num_classes=5)  # classes 3 and 4 appear in neither truth nor prediction
    conf.update(PREDICTION, TARGET)
    iou = conf.iou()
    assert np.isnan(iou[3:]).all()
    assert conf.mean_iou() == pytest.approx(0.5)
    # A class that is only predicted appears, with IoU 0, and lowers the mean.
    conf.update(torch.tensor([[4]]), torch.tensor([[0]]))
    assert conf.iou()[4] == 0.0 and math.isnan(conf.iou()[3])
    assert conf.mean_iou() == pytest.approx((1 / 4 + 2 / 3 + 1 / 2 + 0) / 4)


def test_segmentation_merge_equals_one_update_over_both():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 21, (4, 16, 16), generator=gen)
    target = torch.randint(0, 21, (4, 16, 16), generator=gen)
    target[torch.rand(4, 16, 16, generator=gen) < 0.1] = 255
    first, second, whole = SegmentationConfusion(), SegmentationConfusion(), SegmentationConfusion()
    first.update(pred[:3], target[:3])
    second.update(pred[3], target[3])  # (H, W)
    first.merge(second)
    whole.update(pred, target)
    assert torch.equal(first.matrix, whole.matrix)
    assert int(whole.matrix.sum()) == int((target != 255).sum())


def test_segmentation_accepts_any_integer_dtype():
    reference = SegmentationConfusion(num_classes=3)
    reference.update(PREDICTION, TARGET)
    # The targets' dtypes must hold 255; uint8 would overflow if the flat index were computed in it.
    for pred_dtype, target_dtype in ((torch.uint8, torch.uint8), (torch.int32, torch.int16), (torch.int8, torch.int64)):
        conf = SegmentationConfusion(num_classes=3)
        conf.update(PREDICTION.to(pred_dtype), TARGET.to(target_dtype))
        assert torch.equal(conf.matrix, reference.matrix), (pred_dtype, target_dtype)
    conf = SegmentationConfusion(num_classes=3)
    conf.update(PREDICTION.numpy().astype(np.uint8), TARGET.numpy().astype(np.uint8))  # numpy arrays work too
    assert torch.equal(conf.matrix, reference.matrix)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_segmentation_on_gpu_matches_cpu():
    conf = SegmentationConfusion(num_classes=3)
    conf.update(PREDICTION.cuda(), TARGET.cuda().to(torch.uint8))
    assert conf.matrix.device.type == "cpu"
    assert conf.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_segmentation_matrix_is_a_copy():
    conf = SegmentationConfusion(num_classes=3)
    conf.update(PREDICTION, TARGET)
    conf.matrix.zero_()
    assert int(conf.matrix.sum()) == 6


def test_segmentation_empty_gives_nan_without_warnings():
    conf = SegmentationConfusion()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(conf.iou()).all()
        assert math.isnan(conf.mean_iou())
        assert math.isnan(conf.pixel_accuracy())


def test_segmentation_rejects_bad_input():
    conf = SegmentationConfusion(num_classes=3)
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3\) does not match target shape \(2, 4\)"):
        conf.update(PREDICTION[:, :3], TARGET)
    with pytest.raises(ValueError, match="must be \\(N, H, W\\) or \\(H, W\\)"):
        conf.update(PREDICTION.flatten(), TARGET.flatten())
    with pytest.raises(ValueError, match="integer tensor"):
        conf.update(PREDICTION.float(), TARGET)
    with pytest.raises(ValueError, match="prediction has values \\[3\\] outside \\[0, 3\\)"):
        conf.update(torch.tensor([[3]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="target has values \\[7\\]"):
        conf.update(torch.tensor([[0]]), torch.tensor([[7]]))
    assert int(conf.matrix.sum()) == 0  # a rejected batch counts nothing
    with pytest.raises(ValueError, match="cannot merge a confusion of 21 classes"):
        conf.merge(SegmentationConfusion())
    with pytest.raises(ValueError, match="ignore_index 2 is a class index"):
        SegmentationConfusion(num_classes=3, ignore_index=2)


# --- mean_ignoring_nan ---------------------------------------------------------------------------------------


def test_mean_ignoring_nan():
    assert mean_ignoring_nan(np.array([1.0, math.nan, 0.0])) == pytest.approx(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(mean_ignoring_nan(np.array([math.nan, math.nan])))
        assert math.isnan(mean_ignoring_nan(np.array([])))
