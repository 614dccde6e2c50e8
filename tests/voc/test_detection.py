"""``spotart voc-det``: Faster R-CNN on the trunk learns the toy VOC, boxes keep the devkit's convention through flips
and scoring, difficult objects are left out of training and ignored in scoring, and runs write, refuse and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spotart.models import Trunk
from spotart.train.checkpoints import CheckpointError
from spotart.voc import devkit
from spotart.voc.detection import (
    DetectionOptions,
    TrunkBackbone,
    VOCDetectionSet,
    build_detector,
    collate,
    detect,
    detection_losses,
    evaluate,
    flip_boxes,
    ground_truth,
    run_voc_detection,
    score,
    training_annotations,
    training_targets,
)
from spotart.voc.engine import load_trunk
from spotart.voc.metrics import Detection
from spotart.voc.toy import write_toy_voc

from ..helpers import torch_threads

TOY_CLASSES = ("aeroplane", "bicycle", "bird")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread (module-wide, so that the module-scoped training run gets it too): tiny tensors on a busy CPU."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    """48 trainval and 24 test images of 64..96 px, three shape classes (toy.py); returns the root."""
    root = tmp_path_factory.mktemp("vocdet")
    write_toy_voc(root, splits={"trainval": 48, "test": 24}, classes=TOY_CLASSES, size=(64, 96), seed=0)
    return root


def toy_options(root: Path, **changes) -> DetectionOptions:
    """Small and quick: the images upscaled to 192 px (conv5 12x15), few proposals and RoIs, a 256-wide head."""
    options = DetectionOptions(
        voc_root=str(root), init="random", workers=0, progress=False, log_every=1000,
        min_size=192, max_size=240, hidden=256, dropout=0.0,
        rpn_batch_size=64, rpn_pre_nms_train=600, rpn_proposals_train=150, rpn_pre_nms_test=300,
        rpn_proposals_test=50, roi_batch_size=32,
        optimizer="adam", lr=3e-3, batch_size=4, epochs=10)
    for key, value in changes.items():
        setattr(options, key, value)
    return options


@pytest.fixture(scope="module")
def trained(toy_root, tmp_path_factory) -> tuple[Path, dict, DetectionOptions]:
    """One short run, shared by the tests below: RPN and heads trained on a frozen random-init trunk."""
    out = tmp_path_factory.mktemp("det_run")
    options = toy_options(toy_root, freeze_trunk=True)
    return out, run_voc_detection(out, options), options


def test_training_learns_the_toy_detection_task(trained, toy_root):
    # The toy classes differ in shape and hue, so a frozen random conv5 suffices for the classes; the boxes are the
    # hard part (stride 16). 120 steps of 4 images (Adam, lr 3e-3, 10% after 3/4): measured 41.9 mAP (seed 0) and
    # 41.1 (seed 1), 11-point, on the 24 test images; the same detector untrained scores ~1 (next assertion). About
    # 20 s of CPU time, a minute on a loaded 2-core machine.
    _, result, options = trained
    assert result["map"] > 25.0, result
    assert result["map_area"] > 20.0
    assert set(result["per_class"]) == set(TOY_CLASSES) == set(result["classes_evaluated"])

    trunk, _ = load_trunk(None, "random", options.seed)
    untrained = build_detector(trunk, options)
    folder = devkit.year_folder(toy_root, "2007")
    annotations = devkit.read_annotations(folder, devkit.read_split(folder, "test"))
    loader = torch.utils.data.DataLoader(VOCDetectionSet(folder, annotations), batch_size=4, collate_fn=collate)
    before = evaluate(untrained, loader, annotations, CPU)
    assert before["test_images"] == 24
    assert before["map"] < 10.0 < result["map"] - before["map"], (before["map"], result["map"])


def test_frozen_trunk_trains_only_rpn_and_heads(trained):
    out, _, options = trained
    payload = torch.load(out / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    fresh, _ = load_trunk(None, "random", options.seed)
    state = payload["model"]
    for name, value in fresh.state_dict().items():
        assert torch.equal(state[f"backbone.trunk.{name}"], value), name
    # One parameter group (no trunk group), holding exactly the RPN's and the heads' parameters, all updated.
    groups = payload["optimizer"]["param_groups"]
    assert len(groups) == 1
    head_names = [key for key in state if not key.startswith("backbone.") and key.endswith(("weight", "bias"))]
    assert len(groups[0]["params"]) == len(head_names) == len(payload["optimizer"]["state"])


@pytest.mark.slow
def test_fine_tuning_everything_with_sgd_learns(toy_root, tmp_path):
    # The default optimiser and learning rate (SGD, 0.01), every layer trained, 16 epochs (192 steps): measured 51.7
    # mAP (11-point; 53.7 area). About 80 s of CPU time, four to five minutes on a loaded 2-core machine.
    options = toy_options(toy_root, optimizer="sgd", lr=0.01, epochs=16)
    result = run_voc_detection(tmp_path, options)
    assert result["map"] > 35.0, result
    payload = torch.load(tmp_path / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    fresh, _ = load_trunk(None, "random", options.seed)
    assert not torch.equal(payload["model"]["backbone.trunk.conv1.weight"], fresh.conv1.weight)
    assert len(payload["optimizer"]["param_groups"]) == 2  # heads, and the trunk at trunk_lr_factor x lr


def test_result_file_and_resume(trained, toy_root, tmp_path):
    out, result, options = trained
    saved = json.loads((out / "voc_det.json").read_text())
    assert saved["task"] == "voc-det" and saved["test_images"] == 24 and saved["frozen_trunk"] is True
    assert saved["map"] == pytest.approx(result["map"]) and saved["epochs"] == options.epochs
    for name in TOY_CLASSES:
        assert 0.0 <= saved["per_class"][name]["ap_11point"] <= 100.0
        assert 0.0 <= saved["per_class"][name]["ap_area"] <= 100.0
    assert saved["train_images"] < 48  # the toy set has images whose objects are all difficult: skipped

    with pytest.raises(CheckpointError, match="--resume"):
        run_voc_detection(out, toy_options(toy_root, freeze_trunk=True))
    # Resuming the finished run trains nothing more and scores the checkpointed weights: the same numbers.
    again = run_voc_detection(out, toy_options(toy_root, freeze_trunk=True), resume=True)
    assert again["map"] == pytest.approx(result["map"], abs=1e-6)

    with pytest.raises(CheckpointError, match="no checkpoint"):
        run_voc_detection(tmp_path / "fresh", toy_options(toy_root), resume=True)


def test_wrong_voc_root_is_a_clear_error(tmp_path):
    with pytest.raises(devkit.VOCError, match="no PASCAL VOC 2007 found under .*--download"):
        run_voc_detection(tmp_path / "out", toy_options(tmp_path / "nowhere"))


def test_options_are_checked():
    DetectionOptions().check()
    for bad in ({"max_size": 100, "min_size": 200}, {"anchor_sizes": ()}, {"anchor_ratios": (0.0, 1.0)},
                {"roi_batch_size": 0}, {"max_test": 0}, {"dropout": 1.0}, {"eval_every": -1}):
        with pytest.raises(ValueError):
            DetectionOptions(**bad).check()
    # Faster R-CNN's anchors are given at the 600 px scale and follow the image scale.
    assert DetectionOptions().scaled_anchor_sizes() == (64.0, 128.0, 256.0, 512.0)
    assert DetectionOptions(min_size=300).scaled_anchor_sizes() == (32.0, 64.0, 128.0, 256.0)


# ------------------------------------------------------------------------------------ boxes, flips, difficult
def _annotation(image_id: str, boxes, labels, difficult, width: int = 40, height: int = 30) -> devkit.Annotation:
    return devkit.Annotation(image_id, width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                             np.asarray(labels, np.int64), np.asarray(difficult, bool))


def _bright_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """Torchvision box (0-based, end-exclusive) around the bright pixels of a (3, H, W) image."""
    ys, xs = np.nonzero(image.mean(0).numpy() > 0.5)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_targets_follow_the_pixels_through_flips_and_leave_out_difficult(tmp_path):
    # A white rectangle on 0-based pixels x 5..14, y 3..9 of a 40x30 image: devkit box (6, 4, 15, 10).
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[3:10, 5:15] = 255
    (tmp_path / "JPEGImages").mkdir()
    Image.fromarray(pixels).save(tmp_path / "JPEGImages" / "a.jpg", quality=100)
    ann = _annotation("a", [[6, 4, 15, 10], [30, 20, 38, 28]], [2, 5], [False, True])
    boxes, labels = training_targets(ann)
    np.testing.assert_array_equal(boxes, [[5, 3, 15, 10]])  # the difficult object is not a target
    np.testing.assert_array_equal(labels, [3])  # torchvision's labels: 0 is the background
    np.testing.assert_array_equal(devkit.to_devkit_boxes(boxes), ann.boxes[:1])  # and back

    dataset = VOCDetectionSet(tmp_path, [ann], flip=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(16):
        image, target, index = dataset[0]
        assert index == 0 and image.shape == (3, 30, 40) and target["labels"].tolist() == [3]
        box = tuple(int(v) for v in target["boxes"][0].tolist())
        assert _bright_box(image) == box  # the target box is where the object's pixels are, flipped or not
        seen.add(box)
    assert seen == {(5, 3, 15, 10), (25, 3, 35, 10)}  # both orientations came up
    np.testing.assert_array_equal(flip_boxes(flip_boxes(boxes, 40), 40), boxes)

    kept = training_annotations([ann, _annotation("b", [[1, 1, 9, 9]], [0], [True])])  # b: only a difficult one
    assert len(kept) == 1 and kept[0] is ann


def test_difficult_objects_are_ignored_in_scoring():
    a = _annotation("a", [[1, 1, 20, 20], [25, 5, 38, 28]], [0, 0], [False, True])
    b = _annotation("b", [[5, 5, 25, 25]], [1], [False])
    annotations = [a, b]
    hit_a = Detection("a", 0, 0.9, (1.0, 1.0, 20.0, 20.0))
    hit_b = Detection("b", 1, 0.8, (5.0, 5.0, 25.0, 25.0))
    on_difficult = Detection("a", 0, 0.95, (25.0, 5.0, 38.0, 28.0))
    # A missed difficult object costs no recall, and a detection of it (ranked first) is no false positive.
    assert score([(0, [hit_a]), (1, [hit_b])], annotations)["map"] == pytest.approx(100.0)
    assert score([(0, [on_difficult, hit_a]), (1, [hit_b])], annotations)["map"] == pytest.approx(100.0)
    # The same detection of a non-difficult object that nobody labelled is one: 11-point AP of class 0 drops.
    plain = _annotation("a", [[1, 1, 20, 20]], [0], [False])
    spurious = score([(0, [on_difficult, hit_a]), (1, [hit_b])], [plain, b])
    assert spurious["per_class"]["aeroplane"]["ap_11point"] < 60.0
    assert ground_truth(a).difficult.tolist() == [False, True]
    assert math.isclose(score([(0, []), (1, [hit_b])], annotations)["map"], 50.0)  # aeroplane 0, bicycle 100


class _Oracle(torch.nn.Module):
    """Stands in for the detector: the given torchvision outputs, image by image in loader order."""

    def __init__(self, outputs: list[dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.outputs = iter(outputs)

    def forward(self, images):
        return [next(self.outputs) for _ in images]


def test_detections_come_back_in_devkit_coordinates(toy_root):
    folder = devkit.year_folder(toy_root, "2007")
    annotations = devkit.read_annotations(folder, devkit.read_split(folder, "test"))
    outputs = [{"boxes": torch.from_numpy(devkit.to_torchvision_boxes(ann.boxes)),
                "labels": torch.from_numpy(ann.labels + 1), "scores": torch.ones(len(ann.labels))}
               for ann in annotations]
    loader = torch.utils.data.DataLoader(VOCDetectionSet(folder, annotations), batch_size=5, collate_fn=collate)
    rows = detect(_Oracle(outputs), loader, annotations, CPU)
    assert [index for index, _ in rows] == list(range(len(annotations)))
    for (_, detections), ann in zip(rows, annotations):
        np.testing.assert_array_equal(np.array([d.box for d in detections]).reshape(-1, 4), ann.boxes)
        assert [d.label for d in detections] == ann.labels.tolist()
        assert {d.image_id for d in detections} <= {ann.image_id}
    result = score(rows, annotations)
    assert result["map"] == pytest.approx(100.0) and result["test_images"] == len(annotations)


# -------------------------------------------------------------------------------------------------- precision
def test_bf16_runs_only_trunk_and_fc_layers_in_bf16():
    torch.manual_seed(0)
    trunk = Trunk().eval()
    images = torch.rand(2, 3, 64, 80) * 2 - 1
    exact = TrunkBackbone(trunk)(images)
    mixed = TrunkBackbone(trunk, torch.bfloat16)(images)
    assert exact.dtype == mixed.dtype == torch.float32
    assert (mixed - exact).abs().mean() < 0.05 * exact.abs().mean()

    options = toy_options(Path("."), min_size=64, max_size=96)
    model = build_detector(trunk, options, torch.bfloat16).train()
    trunk.eval()
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 2.0, 30.0, 20.0]]), "labels": torch.tensor([3])}]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as TransferRun.fit calls the step
        losses = detection_losses(model, list((images + 1) / 2), targets, CPU)
    assert set(losses) == {"loss", "classifier", "box_reg", "objectness", "rpn_box_reg"}
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    losses["loss"].backward()
    assert model.rpn.head.conv[0][0].weight.grad.dtype == torch.float32
    with torch.no_grad():
        model.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.autocast("cpu", enabled=False):
            output = model(list((images + 1) / 2))
    assert output[0]["boxes"].dtype == torch.float32  # box decoding in fp32: anchors never rounded to bf16
