"""The command-line options every one-step timing script shares (``step_ab.py``, ``gemm_step_ab.py``): which stage,
config, ``--set`` pairs, image size and batch, turned into the ``--set`` pairs that build a training config without
a data folder, and the one-line header that names them above each table."""

from __future__ import annotations

import argparse


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)


def command_of(args: argparse.Namespace) -> str:
    return "train-spot" if args.stage == 2 else "train-ae"


def config_pairs(args: argparse.Namespace) -> list[str]:
    """``--set`` pairs for ``build_config``: a placeholder data folder (the steps run on a random batch), the size
    and batch asked for, then the user's own pairs, which win."""
    return ["data=unused", f"image_size={args.image_size}", f"batch_size={args.batch_size}", "steps=1000", *args.set]


def header(args: argparse.Namespace) -> str:
    return (f"stage {args.stage}, {args.image_size} px, batch {args.batch_size}, config {args.config or 'defaults'} "
            f"{' '.join('--set ' + pair for pair in args.set)}")
