#!/usr/bin/env python3
"""What the three VOC protocols cost at full scale: FLOPs counted, time per image measured on this device.

For each task, one training step at the protocol's full input size (voc-cls: 227 px crops; voc-det: a 500x375 VOC
image resized to 600 px; voc-seg: 320 px crops) is counted with ``torch.utils.flop_counter`` (convolutions and
matrix products, forward and backward) and timed (the median of three, after a warm-up) on the device it runs on;
one test image likewise (forward only, ten crops for voc-cls). Multiplied by the protocol's images (default epochs
x VOC's split sizes) this gives the total work and the hours of one such device for the model's compute (data
loading, which more workers hide, not included). Run it on the GPU you plan to use:

    python benchmarks/voc_cost.py [--device cuda] [--json]

The last column is the FLOP-bound lower limit at ``--peak-tflops`` (default 312: an A100's dense bf16 peak), an
arithmetic bound, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from spotart.voc.classification import ClassificationOptions, VOCClassifier, multilabel_loss
from spotart.voc.detection import DetectionOptions, build_detector, detection_losses
from spotart.voc.engine import load_trunk
from spotart.voc.segmentation import FCNSegmenter, SegmentationOptions, segmentation_loss

VOC07_TRAINVAL, VOC07_TEST = 5011, 4952
VOC12_SEG_TRAIN, VOC12_SEG_VAL = 1464, 1449


DEVICE = torch.device("cpu")  # set by main()


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def counted(work: Callable[[], None]) -> tuple[float, float]:
    """(FLOPs, median seconds of three calls) of one call, after an untimed warm-up call."""
    from torch.utils.flop_counter import FlopCounterMode

    work()
    with FlopCounterMode(display=False) as counter:
        work()
    times = []
    for _ in range(3):
        _sync()
        start = time.perf_counter()
        work()
        _sync()
        times.append(time.perf_counter() - start)
    return float(counter.get_total_flops()), sorted(times)[1]


def autocast() -> torch.autocast:
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16)


def classification_cost(batch: int = 8) -> dict:
    options = ClassificationOptions()
    model = VOCClassifier(load_trunk(None, "random")[0], options.image_size, options.hidden).to(DEVICE)
    images = torch.rand(batch, 3, options.image_size, options.image_size, device=DEVICE) * 2 - 1
    labels = torch.randint(-1, 2, (batch, 20), device=DEVICE)

    def train() -> None:
        model.train()
        with autocast():
            loss = multilabel_loss(model(images), labels)
        loss.backward()

    def test() -> None:
        model.eval()
        with torch.no_grad(), autocast():
            model(images[:1].expand(options.test_crops, -1, -1, -1))

    (train_flops, train_s), (test_flops, test_s) = counted(train), counted(test)
    return {"train_images": options.epochs * VOC07_TRAINVAL, "test_images": VOC07_TEST,
            "train_gflop_per_image": train_flops / batch / 1e9, "train_s_per_image": train_s / batch,
            "test_gflop_per_image": test_flops / 1e9, "test_s_per_image": test_s,
            "protocol": f"{options.epochs} epochs of VOC07 trainval at {options.image_size} px, "
                        f"{options.test_crops}-crop test"}


def detection_cost(batch: int = 2) -> dict:
    options = DetectionOptions()
    model = build_detector(load_trunk(None, "random")[0], options, torch.bfloat16).to(DEVICE)
    images = [torch.rand(3, 375, 500, device=DEVICE) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[50.0, 60.0, 200.0, 300.0], [220.0, 40.0, 480.0, 200.0]]),
                "labels": torch.tensor([3, 15])} for _ in range(batch)]

    def train() -> None:
        model.train()
        detection_losses(model, images, targets, DEVICE)["loss"].backward()

    def test() -> None:
        model.eval()
        with torch.no_grad():
            model(images[:1])

    (train_flops, train_s), (test_flops, test_s) = counted(train), counted(test)
    return {"train_images": options.epochs * VOC07_TRAINVAL, "test_images": VOC07_TEST,
            "train_gflop_per_image": train_flops / batch / 1e9, "train_s_per_image": train_s / batch,
            "test_gflop_per_image": test_flops / 1e9, "test_s_per_image": test_s,
            "protocol": f"{options.epochs} epochs of VOC07 trainval, shorter side {options.min_size} px"}


def segmentation_cost(batch: int = 4) -> dict:
    options = SegmentationOptions()
    model = FCNSegmenter(load_trunk(None, "random")[0], options.head_channels).to(DEVICE)
    crops = torch.rand(batch, 3, options.crop_size, options.crop_size, device=DEVICE) * 2 - 1
    masks = torch.randint(0, 21, (batch, options.crop_size, options.crop_size), device=DEVICE)
    full = torch.rand(1, 3, 384, 512, device=DEVICE) * 2 - 1  # a 500x375 VOC image padded to a multiple of 16

    def train() -> None:
        model.train()
        with autocast():
            logits = model(crops)
        segmentation_loss(logits, masks).backward()

    def test() -> None:
        model.eval()
        with torch.no_grad(), autocast():
            model(full)

    (train_flops, train_s), (test_flops, test_s) = counted(train), counted(test)
    return {"train_images": options.epochs * VOC12_SEG_TRAIN, "test_images": VOC12_SEG_VAL,
            "train_gflop_per_image": train_flops / batch / 1e9, "train_s_per_image": train_s / batch,
            "test_gflop_per_image": test_flops / 1e9, "test_s_per_image": test_s,
            "protocol": f"{options.epochs} epochs of VOC12 seg train, {options.crop_size} px crops"}


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=312.0,
                        help="peak bf16 TFLOP/s for the FLOP-bound lower limit (default 312, an A100's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    DEVICE = torch.device(args.device)
    name = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    rows = {"voc-cls": classification_cost(), "voc-det": detection_cost(), "voc-seg": segmentation_cost()}
    for row in rows.values():
        total = (row["train_images"] * row["train_gflop_per_image"] + row["test_images"] * row["test_gflop_per_image"])
        row["total_pflop"] = total / 1e6
        row["device_hours"] = (row["train_images"] * row["train_s_per_image"]
                               + row["test_images"] * row["test_s_per_image"]) / 3600
        row["flop_bound_hours_at_peak"] = total * 1e9 / (args.peak_tflops * 1e12) / 3600
    if args.json:
        print(json.dumps({"device": name, "peak_tflops": args.peak_tflops, **rows}))
        return
    print(f"| task | protocol | GFLOP per training image | total PFLOP | hours on {name} (measured rate) | "
          f"FLOP-bound limit at {args.peak_tflops:.0f} TFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for task, row in rows.items():
        print(f"| {task} | {row['protocol']} | {row['train_gflop_per_image']:.1f} | {row['total_pflop']:.2f} | "
              f"{row['device_hours']:.1f} | {60 * row['flop_bound_hours_at_peak']:.1f} min |")


if __name__ == "__main__":
    main()
