"""The command-line options every one-step script shares (``step_ab.py``, ``gemm_step_ab.py``, ``roofline.py``,
``profile_step.py``): which stage, its config, the stage 1 a stage 2 freezes, ``--set`` pairs, image size and batch;
the ``--set`` pairs that build a training config without a data folder, and the one-line header that names them above
each table."""

from __future__ import annotations

import argparse

from spotart.bench import placeholder_pairs


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--config", help="the stage's YAML config (default: the dataclass defaults, as spotart bench)")
    parser.add_argument("--ae-config", help="stage 2: the YAML of the stage 1 whose autoencoder it freezes, e.g. "
                                            "configs/official_stl10_ae.yaml (default: the dataclass defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)


def config_pairs(args: argparse.Namespace) -> list[str]:
    """``--set`` pairs for ``build_config``: a placeholder data folder (the steps run on a random batch), the size
    and batch asked for, then the user's own pairs, which win."""
    return [*placeholder_pairs(args.image_size, args.batch_size), *args.set]


def header(args: argparse.Namespace) -> str:
    autoencoder = f", stage 1 {args.ae_config}" if args.stage == 2 and args.ae_config else ""
    return (f"stage {args.stage}, {args.image_size} px, batch {args.batch_size}, config {args.config or 'defaults'}"
            f"{autoencoder} {' '.join('--set ' + pair for pair in args.set)}").rstrip()
