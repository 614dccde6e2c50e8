"""Device augmentation (``gpu_augment``): the same distribution as the CPU pipeline, no host sync, and the loader
side (canvases, extents) that feeds it."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from spotart.config import build_config
from spotart.data import Augment, FolderSource, collate_skipping, training_loader
from spotart.data.augment_device import Canvas, DeviceAugment, canvas_side

from .helpers import torch_threads, write_images

DRAWS = 300  # augmentations per image and per pipeline in the distribution tests


def _photo_like(height: int, width: int, seed: int) -> Image.Image:
    """A smooth colourful image, bright on its right half so that a flip is visible."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.uniform(20, 235, size=(5, 5, 3)).astype(np.uint8)).resize((width, height),
                                                                                          Image.BILINEAR)
    pixels = np.asarray(base).astype(np.float32)
    pixels[:, width // 2:] = np.clip(pixels[:, width // 2:] + 60, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def _canvases(images: list[Image.Image], side: int, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [Canvas(side)(img) for img in images for _ in range(copies)]
    return torch.stack([c for c, _ in pairs]), torch.stack([e for _, e in pairs])


def _stats(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per augmented image (B, 3, H, W) in [-1, 1]: mean level (brightness), colourfulness (saturation), detail
    (the crop's scale: a smaller crop is enlarged more, which smooths it), right-minus-left brightness (flips)."""
    x = (batch.float() + 1) / 2
    half = x.shape[-1] // 2
    return {"mean": x.mean(dim=(1, 2, 3)), "colour": x.std(dim=1).mean(dim=(1, 2)),
            "detail": (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3)),
            "right_minus_left": x[..., half:].mean(dim=(1, 2, 3)) - x[..., :half].mean(dim=(1, 2, 3))}


def _assert_same_distribution(cpu: torch.Tensor, dev: torch.Tensor, name: str, slack: float = 0.01) -> None:
    """Means within 4 standard errors plus ``slack`` of the CPU's mean (resampling filters differ slightly);
    spreads within 15%. Deterministic: both pipelines draw from fixed seeds."""
    se = math.sqrt(cpu.var().item() / len(cpu) + dev.var().item() / len(dev))
    cpu_mean, dev_mean = cpu.mean().item(), dev.mean().item()
    assert abs(cpu_mean - dev_mean) <= 4 * se + slack * abs(cpu_mean) + 1e-9, (name, cpu_mean, dev_mean, se)
    assert dev.std().item() == pytest.approx(cpu.std().item(), rel=0.15, abs=1e-9), (name, cpu.std(), dev.std())


def _box_stats(boxes: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
    """Per (top, left, h, w) box: area fraction, log aspect ratio, relative centre, and whether it is the fallback."""
    top, left, h, w = boxes.unbind(dim=1)
    return {"area": h * w / (height * width), "log aspect": torch.log(w / h), "centre y": (top + h / 2) / height,
            "centre x": (left + w / 2) / width, "fallback": ((h == w) & (h == min(height, width))).double()}


def test_crop_boxes_are_drawn_as_the_cpu_pipeline_draws_them():
    cpu_aug, dev_aug = Augment(96), DeviceAugment(Augment(96))
    for height, width in ((96, 96), (60, 150), (12, 200)):  # square, wide, and so thin that most tries fail
        cpu = torch.tensor([cpu_aug.crop_box(width, height, random.Random(seed)) for seed in range(3000)],
                           dtype=torch.float64)  # (top, left, h, w)
        extents = torch.tensor([[height, width, height, width]] * 3000)
        dev = dev_aug.crop_boxes(extents, torch.Generator().manual_seed(0)).double()
        assert torch.equal(dev, dev.round()), "boxes are whole pixels, as on the CPU"
        assert (dev[:, 0] >= 0).all() and (dev[:, 0] + dev[:, 2] <= height).all()
        assert (dev[:, 1] >= 0).all() and (dev[:, 1] + dev[:, 3] <= width).all()
        cpu_stats, dev_stats = _box_stats(cpu, height, width), _box_stats(dev, height, width)
        for label in ("area", "log aspect", "centre y", "centre x"):
            _assert_same_distribution(cpu_stats[label], dev_stats[label], f"{label} at {height}x{width}")
        assert dev_stats["fallback"].mean().item() == pytest.approx(cpu_stats["fallback"].mean().item(), abs=0.04)


def test_the_whole_pipeline_matches_the_cpu_distribution():
    images = [_photo_like(96, 96, seed) for seed in range(2)]
    cpu_aug = Augment(96)
    with torch_threads(1):
        cpu = torch.stack([cpu_aug(img, seed) for img in images for seed in range(DRAWS)])
        canvas, extents = _canvases(images, 96, DRAWS)
        dev = DeviceAugment(Augment(96))(canvas, extents, step=0)
    assert dev.shape == cpu.shape and dev.dtype == torch.float32
    assert dev.min() >= -1 and dev.max() <= 1
    cpu_stats, dev_stats = _stats(cpu), _stats(dev)
    for index in range(len(images)):
        part = slice(index * DRAWS, (index + 1) * DRAWS)
        for name in ("mean", "colour", "detail"):
            _assert_same_distribution(cpu_stats[name][part], dev_stats[name][part], f"{name} of image {index}")
        flipped_cpu = (cpu_stats["right_minus_left"][part] < 0).float().mean().item()
        flipped_dev = (dev_stats["right_minus_left"][part] < 0).float().mean().item()
        assert flipped_dev == pytest.approx(0.5, abs=0.08) and flipped_cpu == pytest.approx(0.5, abs=0.08)


def test_images_larger_than_the_canvas_keep_their_crop_distribution():
    """A 200x150 image on a 96 canvas: the crop is drawn in the original's pixels, then mapped onto the canvas."""
    image = _photo_like(150, 200, seed=5)
    cpu_aug = Augment(64, brightness_delta=0, saturation_range=(1.0, 1.0), flip=False)
    dev_aug = DeviceAugment(Augment(64, brightness_delta=0, saturation_range=(1.0, 1.0), flip=False))
    with torch_threads(1):
        cpu = torch.stack([cpu_aug(image, seed) for seed in range(DRAWS)])
        canvas, extents = _canvases([image], 96, DRAWS)
        dev = dev_aug(canvas, extents, step=3)
    assert extents[0].tolist() == [150, 200, 72, 96]
    cpu_stats, dev_stats = _stats(cpu), _stats(dev)
    for name in ("mean", "colour", "detail", "right_minus_left"):
        _assert_same_distribution(cpu_stats[name], dev_stats[name], name)


def test_with_every_random_part_off_the_image_comes_back_unchanged():
    image = _photo_like(40, 40, seed=1)
    identity = DeviceAugment(Augment(40, crop_scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, brightness_delta=0,
                                     saturation_range=(1.0, 1.0)))
    canvas, extents = _canvases([image], 64, 2)  # the image fills 40x40 of a 64x64 canvas
    out = identity(canvas, extents, step=0)
    expected = TF.pil_to_tensor(image).float().div(127.5).sub(1)
    assert torch.allclose(out[0], expected, atol=1e-5) and torch.allclose(out[1], expected, atol=1e-5)


def test_a_fixed_crop_is_resampled_as_torchvision_resizes_it(monkeypatch):
    image = _photo_like(96, 96, seed=2)
    pixels = TF.pil_to_tensor(image)
    plain = DeviceAugment(Augment(64, flip=False, brightness_delta=0, saturation_range=(1.0, 1.0)))
    canvas, extents = _canvases([image], 96, 2)
    for top, left, h, w in ((10, 20, 40, 30), (0, 0, 96, 90)):  # enlarged, then shrunk
        monkeypatch.setattr(plain, "crop_boxes",
                            lambda ext, gen, box=(top, left, h, w): torch.tensor([box, box], dtype=torch.float32))
        out = (plain(canvas, extents, step=0)[0] + 1) * 127.5
        reference = TF.resized_crop(pixels, top, left, h, w, [64, 64], antialias=True).float()
        # bilinear either way; when shrinking, roi_align averages a box of samples where torchvision uses a
        # triangle filter, so single pixels of this smooth image differ by a few levels at most
        assert (out - reference).abs().mean() < 1.0 and (out - reference).abs().max() < 12


def test_parameters_depend_on_the_step_alone():
    canvas, extents = _canvases([_photo_like(48, 48, seed=3)], 48, 4)
    augment = DeviceAugment(Augment(32))
    first, again, other = augment(canvas, extents, 7), augment(canvas, extents, 7), augment(canvas, extents, 8)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first[0], first[1]), "each image of a batch draws its own parameters"
    assert not torch.equal(DeviceAugment(Augment(32), rank=1)(canvas, extents, 7), first), "ranks draw differently"


class _NoHostSync:
    """Makes every Tensor -> Python conversion raise: on a GPU each of them would wait for the device."""

    NAMES = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch

    def __enter__(self):
        def refuse(*args, **kwargs):
            raise AssertionError("a host synchronisation (Tensor -> Python value) inside a step")

        for name in self.NAMES:
            self.monkeypatch.setattr(torch.Tensor, name, refuse)
        return self

    def __exit__(self, *exc):
        self.monkeypatch.undo()
        return False


def test_the_device_augmentation_reads_nothing_back(monkeypatch):
    canvas, extents = _canvases([_photo_like(40, 56, seed=4)], 64, 3)
    augment = DeviceAugment(Augment(32))
    with _NoHostSync(monkeypatch):
        out = augment(canvas, extents, step=1)
    assert out.shape == (3, 3, 32, 32)


def test_canvas_keeps_small_images_and_fits_large_ones():
    small = _photo_like(40, 50, seed=0)
    canvas, extent = Canvas(64)(small)
    assert canvas.dtype == torch.uint8 and canvas.shape == (3, 64, 64)
    assert extent.tolist() == [40, 50, 40, 50]
    pixels = TF.pil_to_tensor(small)
    assert torch.equal(canvas[:, :40, :50], pixels)
    assert torch.equal(canvas[:, :40, 50:], pixels[:, :, -1:].expand(-1, -1, 14)), "edge column repeated"
    assert torch.equal(canvas[:, 40:, :], canvas[:, 39:40, :].expand(-1, 24, -1)), "edge row repeated"
    _, extent = Canvas(64)(_photo_like(100, 200, seed=0))
    assert extent.tolist() == [100, 200, 32, 64]


def test_canvas_side_follows_the_data_within_one_to_two_output_sizes(tmp_path):
    assert canvas_side(FolderSource(write_images(tmp_path / "a", 2, size=40)), 32) == 40
    assert canvas_side(FolderSource(write_images(tmp_path / "b", 2, size=20)), 32) == 32
    assert canvas_side(FolderSource(write_images(tmp_path / "c", 2, size=300)), 32) == 64


def test_the_loader_yields_canvases_and_extents_under_gpu_augment(image_folder):
    cfg = build_config("train-ae", set_pairs=[f"data={image_folder}", "image_size=32", "batch_size=4", "steps=2",
                                              "num_workers=0", "gpu_augment=true"])
    loader, sampler, _ = training_loader(cfg)
    sampler.set_epoch(0)
    batch = next(iter(loader))
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (4, 3, 48, 48)  # images are 48 px
    assert batch["extents"].tolist() == [[48, 48, 48, 48]] * 4
    assert "extents" not in collate_skipping([(torch.zeros(3, 4, 4), 0)])
