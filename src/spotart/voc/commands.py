"""CLI commands of the VOC transfer package: ``voc-cls``, ``voc-det``, ``voc-seg`` and ``voc-toy``.

Each command imports its pipeline only when it runs. Flags map one to one onto the task's options dataclass; a flag
left out keeps the dataclass default (the full-scale protocol), so ``--help`` and the dataclasses never disagree.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from .devkit import DEFAULT_VOC_ROOT

GPU_NOTE = ("Multi-GPU: torchrun --nproc_per_node=N -m spotart <command> ... (each process takes --batch-size images; "
            "evaluation is sharded over the processes and gathered).")


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions of the run, got {text!r}")
    return values


def _common_flags(p: argparse.ArgumentParser, year: str, train_split: str, test_split: str) -> None:
    p.add_argument("--out", required=True, help="run folder: options.json, metrics.jsonl, TensorBoard, checkpoints, "
                   "and the result file")
    p.add_argument("--voc-root", default=DEFAULT_VOC_ROOT,
                   help=f"folder holding VOCdevkit/VOC<year> (default {DEFAULT_VOC_ROOT})")
    p.add_argument("--download", action="store_true", help="download the VOC splits with torchvision if missing")
    p.add_argument("--year", help=f"VOC year (default {year})")
    p.add_argument("--train-split", help=f"ImageSets split to train on (default {train_split})")
    p.add_argument("--test-split", help=f"split to evaluate on (default {test_split})")
    p.add_argument("--checkpoint", help="train-spot, train-supervised or train-rotnet checkpoint whose conv1..conv5 "
                   "are transferred")
    p.add_argument("--init", choices=("checkpoint", "random"), help="random: a random-init trunk (the baseline)")
    p.add_argument("--freeze-trunk", action="store_true", help="train only the new layers on frozen conv1..conv5")
    p.add_argument("--epochs", type=int, help="passes over the training split")
    p.add_argument("--batch-size", type=int, help="images per process")
    p.add_argument("--lr", type=float, help="learning rate of the new layers")
    p.add_argument("--trunk-lr-factor", type=float,
                   help="learning rate of conv1..conv5 relative to --lr (default 1; voc-seg 0.1)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="default sgd (momentum 0.9)")
    p.add_argument("--weight-decay", type=float, help="default 5e-4")
    p.add_argument("--lr-steps", type=_fractions, metavar="F[,F]",
                   help="fractions of the run where the learning rate drops 10x (default 0.66)")
    p.add_argument("--max-train", type=int, help="use only the first N training images (a quick check)")
    p.add_argument("--max-test", type=int, help="evaluate on the first N test images only")
    p.add_argument("--workers", type=int, help="image-decoding processes (default 2)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="auto: bf16 autocast where it is fast")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--log-every", type=int, help="steps between metrics.jsonl rows (default 20)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option of the task, type-checked (repeatable), e.g. --set hidden=1024; the keys "
                   "are the fields of its options (OUT/options.json lists them)")


def _options(cls: type, args: argparse.Namespace) -> Any:
    """The options dataclass from the flags that were given (the rest keep their defaults), then ``--set``."""
    from ..config import apply_overrides, parse_set_args

    names = {f.name for f in fields(cls)}
    given = {key: value for key, value in vars(args).items() if key in names and value is not None}
    given["download"] = bool(args.download)
    given["freeze_trunk"] = bool(args.freeze_trunk)
    options = cls(**given)
    apply_overrides(options, parse_set_args(args.set), source="--set")
    options.check()
    return options


def cmd_voc_cls(args: argparse.Namespace) -> None:
    from .classification import ClassificationOptions, run_voc_classification

    run_voc_classification(args.out, _options(ClassificationOptions, args), resume=args.resume)


def cmd_voc_det(args: argparse.Namespace) -> None:
    from .detection import DetectionOptions, run_voc_detection

    run_voc_detection(args.out, _options(DetectionOptions, args), resume=args.resume)


def cmd_voc_seg(args: argparse.Namespace) -> None:
    from .segmentation import SegmentationOptions, run_voc_segmentation

    run_voc_segmentation(args.out, _options(SegmentationOptions, args), resume=args.resume)


def cmd_voc_toy(args: argparse.Namespace) -> None:
    from .toy import write_toy_voc

    det = write_toy_voc(args.out, "2007", {"trainval": args.images, "test": args.images // 2}, seed=args.seed)
    seg = write_toy_voc(args.out, "2012", {"train": args.images, "val": args.images // 2}, seed=args.seed + 1)
    print(f"toy VOC written: {det} (trainval/test) and {seg} (train/val); use --voc-root {args.out}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the ``spotart`` parser."""
    p = sub.add_parser(
        "voc-cls", help="PASCAL VOC2007 multi-label classification (fine-tune or frozen trunk), mAP",
        description="Fine-tune conv1..conv5 with new fc6-fc8 layers on VOC2007 trainval (Krähenbühl et al.'s "
        "protocol, as the paper), test on VOC2007 test with ten-crop averaging, and report per-class and mean AP "
        "both as VOC2007's 11-point devkit and as area under the curve. Writes OUT/voc_cls.json. " + GPU_NOTE)
    _common_flags(p, "2007", "trainval", "test")
    p.add_argument("--image-size", type=int, help="crop size (default 227)")
    p.add_argument("--hidden", type=int, help="fc6/fc7 width (default 4096; 0: one linear layer)")
    p.add_argument("--test-crops", type=int, choices=(1, 10), help="10 (default): corners, centre and mirrors")
    p.set_defaults(func=cmd_voc_cls)

    p = sub.add_parser(
        "voc-det", help="PASCAL VOC2007 detection: Faster R-CNN on the trunk, mAP at IoU 0.5",
        description="torchvision's Faster R-CNN with conv1..conv5 as its backbone (conv5, stride 16), trained on "
        "VOC2007 trainval and tested on VOC2007 test; mAP at IoU 0.5 as the VOC devkit computes it (11-point, "
        "difficult objects ignored), plus area-under-curve AP. Writes OUT/voc_det.json. " + GPU_NOTE)
    _common_flags(p, "2007", "trainval", "test")
    p.add_argument("--min-size", type=int, help="shorter image side after resizing (default 600)")
    p.add_argument("--max-size", type=int, help="longest image side after resizing (default 1000)")
    p.set_defaults(func=cmd_voc_det)

    p = sub.add_parser(
        "voc-seg", help="PASCAL VOC2012 segmentation: FCN head on the trunk, mean IoU (21 classes, 255 ignored)",
        description="An FCN-style head on conv5 with a conv2 skip, trained on VOC2012 train and evaluated on "
        "VOC2012 val at full resolution; mean IoU over the 21 classes with label 255 ignored. Writes "
        "OUT/voc_seg.json. " + GPU_NOTE)
    _common_flags(p, "2012", "train", "val")
    p.add_argument("--crop-size", type=int, help="training crop side, a multiple of 16 (default 320)")
    p.add_argument("--min-scale", type=float, help="smallest random rescale of a training image (default 0.5)")
    p.add_argument("--max-scale", type=float, help="largest random rescale (default 2.0)")
    p.add_argument("--head-channels", type=int, help="width of the FCN head's 3x3 conv on conv5 (default 512)")
    p.set_defaults(func=cmd_voc_seg)

    p = sub.add_parser(
        "voc-toy", help="write a small generated dataset in the VOCdevkit layout (to try the VOC commands)",
        description="Drawn shapes on textured backgrounds with boxes, difficult flags and segmentation masks, as "
        "OUT/VOCdevkit/VOC2007 (trainval, test) and OUT/VOCdevkit/VOC2012 (train, val).")
    p.add_argument("--out", required=True, help="root folder; pass it to the VOC commands as --voc-root")
    p.add_argument("--images", type=int, default=64, help="training images per year (test/val: half; default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_voc_toy)
