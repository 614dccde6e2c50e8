"""``spotart voc-seg``: it learns the toy task, transforms image and mask together, ignores void pixels, scores
whole images at full resolution, and writes its result once per run folder."""

from __future__ import annotations

import json
import types
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spotart.models import Trunk
from spotart.train.checkpoints import CheckpointError, load_checkpoint
from spotart.voc import devkit
from spotart.voc.devkit import IGNORE_INDEX, VOCError
from spotart.voc.engine import load_trunk
from spotart.voc.segmentation import (
    MEAN_COLOUR,
    FCNSegmenter,
    SegmentationOptions,
    TestTransform,
    TrainTransform,
    confusion_matrix,
    run_voc_segmentation,
    segmentation_loss,
)
from spotart.voc.toy import write_toy_voc


@pytest.fixture(scope="session")
def voc2012(tmp_path_factory) -> Path:
    """The root of a toy VOC2012 (Segmentation train 32, val 16 images, 64..96 px): pass it as ``voc_root``."""
    root = tmp_path_factory.mktemp("voc2012")
    write_toy_voc(root, "2012", {"train": 32, "val": 16}, size=(64, 96), seed=0)
    return root


def quick_options(voc_root, **overrides) -> SegmentationOptions:
    values = dict(voc_root=str(voc_root), init="random", crop_size=64, min_scale=0.75, max_scale=1.25, epochs=10,
                  batch_size=8, lr=0.01, workers=0, progress=False)
    values.update(overrides)
    return SegmentationOptions(**values)


# ------------------------------------------------------------------------------------------------ learning
def test_fine_tuning_learns_the_toy_task_well_above_all_background(voc2012, tmp_path):
    result = run_voc_segmentation(tmp_path / "run", quick_options(voc2012))
    assert result["test_images"] == 16
    # all background: background IoU = its share of the labelled pixels, 0 for the three shape classes
    folder = devkit.year_folder(voc2012, "2012")
    masks = [devkit.load_mask(folder, i) for i in devkit.read_split(folder, "val", segmentation=True)]
    background = sum(int((m == 0).sum()) for m in masks) / sum(int((m != IGNORE_INDEX).sum()) for m in masks)
    baseline = 100 * background / 4
    # measured: 54.1 mIoU (seeds 1 and 2: 51.0, 49.4) against 22.4 for all background (random-init trunk,
    # 10 epochs of 4 steps of 8 crops of 64 px; about 10 s on one busy core)
    assert result["miou"] > 40 and result["miou"] > baseline + 15, (result["miou"], baseline)
    assert set(result["classes_evaluated"]) >= {"background", "aeroplane", "bicycle", "bird"}
    assert result["per_class"]["background"] > 80
    assert sum(result["per_class"][name] > 20 for name in ("aeroplane", "bicycle", "bird")) >= 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert any("test_miou" in row for row in rows)  # the interim evaluations


# ------------------------------------------------------------------------------------------------ data
def position_image(width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    """Red = x, green = y, blue = 0; the mask is a function of the position too: (x + 2y) mod 21."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels), ((x + 2 * y) % 21).astype(np.uint8)


def decode(image: torch.Tensor) -> np.ndarray:
    """[-1, 1] (3, H, W) back to uint8 (H, W, 3)."""
    return ((image + 1.0) * 127.5).round().permute(1, 2, 0).numpy().astype(np.int64)


def test_crop_and_flip_move_image_and_mask_together():
    image, mask = position_image(80, 60)
    transform = TrainTransform(48, min_scale=1.0, max_scale=1.0)
    flips = set()
    for seed in range(12):
        pixels, target = transform(image, mask, torch.Generator().manual_seed(seed))
        assert pixels.shape == (3, 48, 48) and target.shape == (48, 48) and target.dtype == torch.int64
        rgb = decode(pixels)
        x, y = rgb[..., 0], rgb[..., 1]
        assert np.array_equal(target.numpy(), (x + 2 * y) % 21)
        assert np.all(np.abs(np.diff(y, axis=0)) == 1) and np.all(np.diff(y, axis=1) == 0)  # rows stay rows
        step = np.unique(np.diff(x, axis=1))
        assert len(step) == 1 and step[0] in (1, -1)
        flips.add(int(step[0]))
    assert flips == {1, -1}  # both flipped and unflipped crops occur


def test_padding_is_mean_colour_in_the_image_and_ignore_in_the_mask():
    image, mask = position_image(40, 30)
    for seed in range(4):
        pixels, target = TrainTransform(48, 1.0, 1.0)(image, mask, torch.Generator().manual_seed(seed))
        rgb = decode(pixels)
        padded = rgb[..., 2] != 0  # real pixels have blue 0, the mean colour's is 104
        assert padded.sum() == 48 * 48 - 40 * 30
        assert np.all(rgb[padded] == MEAN_COLOUR)
        assert np.array_equal(target.numpy() == IGNORE_INDEX, padded)
        assert np.array_equal(target.numpy()[~padded], (rgb[..., 0] + 2 * rgb[..., 1])[~padded] % 21)


def test_rescale_resizes_image_and_mask_alike():
    image, mask = position_image(64, 40)
    pixels, target = TrainTransform(48, 0.5, 0.5)(image, mask, torch.Generator().manual_seed(0))
    labelled = target.numpy() != IGNORE_INDEX
    assert labelled.sum() == 32 * 20
    assert np.array_equal(decode(pixels)[..., 2] == 0, labelled)  # the image content covers the same pixels


def test_test_transform_pads_to_a_multiple_of_16_and_keeps_the_mask():
    image, mask = position_image(70, 50)
    pixels, target = TestTransform()(image, mask)
    assert pixels.shape == (3, 64, 80) and np.array_equal(target.numpy(), mask)
    assert np.array_equal(decode(pixels)[:50, :70, :2], np.asarray(image)[..., :2])


def test_evaluation_crops_predictions_back_to_the_image():
    """An 'oracle' that predicts class 1 on image pixels and 0 on padding is perfect only if the prediction is
    cropped back to exactly the image's pixels."""

    def oracle(pixels: torch.Tensor) -> torch.Tensor:
        real = (pixels[:, 2] < -0.5).float()  # blue 0 -> -1; the mean colour's blue 104 -> -0.18
        return torch.stack([1 - real, real] + [torch.full_like(real, -1.0)] * 19, dim=1)

    oracle.eval = lambda: None
    batches = []
    for index, (w, h) in enumerate([(70, 50), (33, 47)]):
        image, _ = position_image(w, h)
        mask = np.ones((h, w), dtype=np.uint8)
        mask[0, :5] = IGNORE_INDEX  # not counted
        pixels, target = TestTransform()(image, mask)
        batches.append((pixels[None], target[None], torch.tensor([index])))
    run = types.SimpleNamespace(device=torch.device("cpu"), runtime=types.SimpleNamespace(autocast=nullcontext))
    confusion, images = confusion_matrix(oracle, batches + [None], run)
    assert images == 2
    assert int(confusion.matrix.sum()) == 70 * 50 + 33 * 47 - 10
    assert confusion.pixel_accuracy() == 1.0 and confusion.mean_iou() == 1.0  # only class 1 occurs


# ------------------------------------------------------------------------------------------------ model, loss
def test_segmenter_returns_float_logits_at_the_input_size():
    torch.manual_seed(0)
    model = FCNSegmenter(Trunk(), head_channels=32).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 3, 48, 80) * 2 - 1)
    assert logits.shape == (2, 21, 48, 80) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_ignored_pixels_do_not_count_in_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 21, 8, 8, requires_grad=True)
    target = torch.randint(0, 21, (2, 8, 8))
    target[0, :3] = IGNORE_INDEX
    target[1, :, :2] = IGNORE_INDEX
    ignored = (target == IGNORE_INDEX).unsqueeze(1).expand_as(logits)
    loss = segmentation_loss(logits, target)
    labelled = target != IGNORE_INDEX
    expected = F.cross_entropy(logits.detach().permute(0, 2, 3, 1)[labelled], target[labelled])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)  # the mean over labelled pixels only
    loss.backward()
    assert logits.grad[ignored].abs().max() == 0 and logits.grad[~ignored].abs().max() > 0
    changed = torch.where(ignored, torch.randn_like(logits) * 100, logits.detach())
    assert segmentation_loss(changed, target).item() == pytest.approx(loss.item(), rel=1e-6)
    nothing = segmentation_loss(logits.detach(), torch.full_like(target, IGNORE_INDEX))
    assert nothing.item() == 0.0  # a crop entirely off the image: no NaN


# ------------------------------------------------------------------------------------------------ the run
def test_frozen_trunk_result_file_and_run_folder(voc2012, tmp_path):
    out = tmp_path / "run"
    options = quick_options(voc2012, epochs=1, max_train=8, max_test=4, freeze_trunk=True, head_channels=32)
    result = run_voc_segmentation(out, options)
    saved = json.loads((out / "voc_seg.json").read_text())
    assert saved["test_images"] == 4 and saved["task"] == "voc-seg" and saved["frozen_trunk"] is True
    assert saved["miou"] == pytest.approx(result["miou"]) and 0 <= saved["miou"] <= 100
    assert set(saved["per_class"]) == set(saved["classes_evaluated"]) and "background" in saved["per_class"]
    assert {"pixel_accuracy", "trunk", "train_split", "test_split", "epochs", "wall_s"} <= set(saved)
    # only the head trained: conv1..conv5 (and conv5's BatchNorm statistics) are the random init's
    state = load_checkpoint(out / "checkpoints" / "latest.pt", expect_stage="voc-seg")["model"]
    fresh = load_trunk(None, "random", options.seed)[0].state_dict()
    for name, value in fresh.items():
        assert torch.equal(state[f"trunk.{name}"], value), name
    assert state["skip8.1.weight"].abs().max() > 0  # zero at init: the head did learn

    with pytest.raises(CheckpointError, match="resume"):
        run_voc_segmentation(out, options)


def test_missing_split_is_a_clear_error(voc2012, tmp_path):
    with pytest.raises(VOCError, match=r"trainaug\.txt not found \(available: .*train.*val"):
        run_voc_segmentation(tmp_path / "run", quick_options(voc2012, train_split="trainaug"))


def test_options_are_checked():
    with pytest.raises(ValueError, match="multiple of 16"):
        SegmentationOptions(crop_size=100).check()
    with pytest.raises(ValueError, match="scales"):
        SegmentationOptions(min_scale=2.0, max_scale=1.0).check()
