#!/usr/bin/env python3
"""What the three VOC protocols cost at full scale: FLOPs counted, CPU time measured, GPU hours derived.

For each task, one training step at the protocol's full input size (voc-cls: 227 px crops; voc-det: a 500x375 VOC
image resized to 600 px; voc-seg: 320 px crops) is counted with ``torch.utils.flop_counter`` (convolutions and
matrix products, forward and backward) and timed on this machine; one test image likewise (forward only, ten crops
for voc-cls). Multiplied by the protocol's images (default epochs x VOC's split sizes) this gives the total work,
the hours this CPU would need, and the hours at a stated sustained GPU throughput (an assumption, printed as such:
no GPU was measured).

    python benchmarks/voc_cost.py [--gpu-tflops 100] [--json]
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


def counted(work: Callable[[], None]) -> tuple[float, float]:
    """(FLOPs, seconds) of one call, after one untimed warm-up call."""
    from torch.utils.flop_counter import FlopCounterMode

    work()
    with FlopCounterMode(display=False) as counter:
        work()
    start = time.perf_counter()
    work()
    return float(counter.get_total_flops()), time.perf_counter() - start


def autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def classification_cost(batch: int = 8) -> dict:
    options = ClassificationOptions()
    model = VOCClassifier(load_trunk(None, "random")[0], options.image_size, options.hidden)
    images = torch.rand(batch, 3, options.image_size, options.image_size) * 2 - 1
    labels = torch.randint(-1, 2, (batch, 20))

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
    model = build_detector(load_trunk(None, "random")[0], options, torch.bfloat16)
    images = [torch.rand(3, 375, 500) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[50.0, 60.0, 200.0, 300.0], [220.0, 40.0, 480.0, 200.0]]),
                "labels": torch.tensor([3, 15])} for _ in range(batch)]

    def train() -> None:
        model.train()
        detection_losses(model, images, targets, torch.device("cpu"))["loss"].backward()

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
    model = FCNSegmenter(load_trunk(None, "random")[0], options.head_channels)
    crops = torch.rand(batch, 3, options.crop_size, options.crop_size) * 2 - 1
    masks = torch.randint(0, 21, (batch, options.crop_size, options.crop_size))
    full = torch.rand(1, 3, 384, 512) * 2 - 1  # a 500x375 VOC image padded to a multiple of 16

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-tflops", type=float, default=100.0,
                        help="assumed sustained bf16 TFLOP/s of one GPU (default 100, about a third of an A100's "
                        "peak; an assumption, not a measurement)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = {"voc-cls": classification_cost(), "voc-det": detection_cost(), "voc-seg": segmentation_cost()}
    for row in rows.values():
        total = (row["train_images"] * row["train_gflop_per_image"] + row["test_images"] * row["test_gflop_per_image"])
        row["total_pflop"] = total / 1e6
        row["cpu_hours_here"] = (row["train_images"] * row["train_s_per_image"]
                                 + row["test_images"] * row["test_s_per_image"]) / 3600
        row["gpu_hours_at_assumed_rate"] = total * 1e9 / (args.gpu_tflops * 1e12) / 3600
    if args.json:
        print(json.dumps({"gpu_tflops_assumed": args.gpu_tflops, "threads": torch.get_num_threads(), **rows}))
        return
    print(f"| task | protocol | GFLOP per training image | total PFLOP | hours on this CPU ({torch.get_num_threads()} "
          f"threads, measured rate) | GPU hours at an assumed {args.gpu_tflops:.0f} TFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for task, row in rows.items():
        print(f"| {task} | {row['protocol']} | {row['train_gflop_per_image']:.1f} | {row['total_pflop']:.2f} | "
              f"{row['cpu_hours_here']:.0f} | {row['gpu_hours_at_assumed_rate']:.2f} |")


if __name__ == "__main__":
    main()
