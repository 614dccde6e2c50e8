"""The ``spotart`` command line: a thin layer over the package; each command lives in its own module."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import ConfigError, build_config
from .outputs import VOC_RUN, check_output_dir, check_output_file

log = logging.getLogger("spotart")

# The output paths of each command, checked before it starts: (argument, "dir" or "file", the run kinds an
# existing folder may hold: None for any, e.g. a probe written into the run it evaluates).
OUTPUTS: dict[str, list[tuple[str, str, frozenset[str] | None]]] = {
    "train-ae": [("out", "dir", frozenset({"train-ae"}))],
    "train-spot": [("out", "dir", frozenset({"train-spot"}))],
    "train-supervised": [("out", "dir", frozenset({"train-supervised"}))],
    "demo": [("out", "dir", frozenset())],
    "probe": [("out", "dir", None)],
    "finetune": [("out", "dir", None)],
    "reproduce": [("work", "dir", frozenset()), ("results", "dir", frozenset())],
    "report": [("out", "file", None)],
    "export": [("out", "file", None)],
    "import-official": [("out", "file", None)],
    "spot": [("out_dir", "dir", None)],
    "voc-cls": [("out", "dir", frozenset({VOC_RUN}))],
    "voc-det": [("out", "dir", frozenset({VOC_RUN}))],
    "voc-seg": [("out", "dir", frozenset({VOC_RUN}))],
    "voc-toy": [("out", "dir", frozenset())],
}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command, once, before any work: a bad one is one line, not a late traceback."""
    for name, kind, accept in OUTPUTS.get(args.command, []):
        value = getattr(args, name, None)
        if value:
            flag = "--" + name.replace("_", "-")
            if kind == "file":
                check_output_file(value, flag)
            else:
                check_output_dir(value, flag, accept)


def package_version() -> str:
    """The installed distribution's version (importlib.metadata); the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spotart")
    except PackageNotFoundError:
        from . import __version__

        return f"{__version__} (not installed)"

# Errors that are the user's to fix: one clear line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, FloatingPointError, ValueError)


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image folder (class folders or flat), tar shards (a `spotart pack` folder or "
                        "'DIR/train-{000000..000009}.tar'), or stl10 / cifar10 (torchvision)")
    parser.add_argument("--out", required=True, help="run directory: config, metrics.jsonl, TensorBoard, checkpoints")
    parser.add_argument("--image-size", type=int, help="96 (paper), 64 or 32 (any multiple of 16 from 32)")
    parser.add_argument("--batch-size", type=int, help="per process (the global batch is this x processes)")
    parser.add_argument("--steps", type=int, help="optimiser steps (takes precedence over --epochs)")
    parser.add_argument("--epochs", type=int, help="passes over the data (paper: 500)")
    parser.add_argument("--config", help="YAML file of config keys (see configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, type-checked (repeatable), e.g. --set drop_rate=0.6")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")


def _training_values(args: argparse.Namespace) -> dict:
    return {"data": args.data, "image_size": args.image_size, "batch_size": args.batch_size,
            "steps": args.steps, "epochs": args.epochs,
            "autoencoder": getattr(args, "autoencoder", None)}


def cmd_train_ae(args: argparse.Namespace) -> None:
    from .train.stage1 import train_autoencoder

    cfg = build_config("train-ae", args.config, args.set, _training_values(args))
    train_autoencoder(cfg, args.out, resume=args.resume)


def cmd_train_spot(args: argparse.Namespace) -> None:
    from .evaluation.knn import monitor_from_config
    from .train.stage2 import train_spot

    cfg = build_config("train-spot", args.config, args.set, _training_values(args))
    train_spot(cfg, args.out, resume=args.resume, monitor=monitor_from_config(cfg))


def cmd_train_rotnet(args: argparse.Namespace) -> None:
    from .evaluation.knn import monitor_from_config
    from .train.rotnet import train_rotnet

    cfg = build_config("train-rotnet", args.config, args.set, _training_values(args))
    train_rotnet(cfg, args.out, resume=args.resume, monitor=monitor_from_config(cfg))


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.out, minutes=args.minutes)


def cmd_import_official(args: argparse.Namespace) -> None:
    from .official import import_official

    path, stage = import_official(args.weights, args.out, args.image_size)
    print(f"wrote {path}: a {stage} checkpoint of the authors' networks (official settings in its config)")


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import main as bench_main

    bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotart", description="Self-supervised feature learning by learning to spot artifacts (CVPR 2018)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    parser.add_argument("--version", action="version", version=f"spotart {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-ae", help="stage 1: train the autoencoder",
                       description="Stage 1: train the autoencoder E, D (30 x MSE, Adam 3e-4).")
    _add_training_flags(p)
    p.set_defaults(func=cmd_train_ae)

    p = sub.add_parser("train-spot", help="stage 2: train the discriminator to spot repaired artifacts",
                       description="Stage 2: damage the frozen encoder's features, repair them adversarially, "
                       "and train the discriminator C to spot real vs repaired and where the damage is. If C's "
                       "accuracy (disc_acc in metrics.jsonl) stays at 0.5 because R wins at once, as it does with "
                       "the paper's losses at small budgets, use --config configs/small_scale.yaml "
                       "(--set repair_loss=paper_plus_c --set warmup_steps=60); see benchmarks/RESULTS.md. "
                       "configs/official_stl10.yaml is the official code's training.")
    _add_training_flags(p)
    p.add_argument("--autoencoder", help="stage-1 checkpoint (runs/ae/checkpoints/latest.pt)")
    p.set_defaults(func=cmd_train_spot)

    p = sub.add_parser("train-rotnet", help="a yardstick: RotNet (predict 0/90/180/270 degrees) on the same trunk",
                       description="RotNet (Gidaris et al., ICLR 2018) on the discriminator's conv1..conv5 with "
                       "RotNet's AlexNet head: each batch holds all four rotations of each image. The same data, "
                       "augmentation, Adam, schedule, run directory, kNN monitor (--set knn_val=DIR) and --resume as "
                       "train-spot; --set max_seconds=S trains for a time budget instead of --steps. Its checkpoint "
                       "(stage 'rotnet') is read by probe, finetune, export and the VOC commands.")
    _add_training_flags(p)
    p.set_defaults(func=cmd_train_rotnet)

    p = sub.add_parser("demo", help="both stages for a few minutes on photographs bundled with scikit-image")
    p.add_argument("--out", default="demo_run", help="run directory (default: demo_run)")
    p.add_argument("--minutes", type=float, default=4.0, help="rough time budget for both stages on this machine")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="throughput against this machine's matmul ceiling, vs the fp32 eager path")
    p.add_argument("--data", help="image folder for the data-pipeline timing (default: ../shared/data imagenette)")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each measurement")
    p.add_argument("--fp32-steps", type=int, default=2, help="timed steps of the slow fp32 eager reference")
    p.add_argument("--num-workers", type=int, default=2, help="data-loader workers for the data timing")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to measure (default: CUDA when available, else the CPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config key (repeatable) in the stages that have it, e.g. --set "
                   "gpu_augment=true, --set decoder_upsampling=tf_legacy (stage 1's autoencoder, frozen in stage 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("import-official", help="an official TF checkpoint's weights (.npz) as a spotart checkpoint",
                       description="Turn the authors' TensorFlow variables, dumped to an .npz keyed by their official "
                       "names (docs/fidelity.md has the few lines of TensorFlow that write one), into a spotart "
                       "checkpoint: the autoencoder alone gives a stage-1 checkpoint for train-spot --autoencoder; "
                       "with the discriminator a stage-2 checkpoint that probe, finetune, export and the VOC "
                       "commands read. spotart never imports TensorFlow.")
    p.add_argument("weights", help="the .npz of official variables")
    p.add_argument("--out", required=True, help="the checkpoint to write (.pt)")
    p.add_argument("--image-size", type=int, default=None,
                   help="the images the networks were trained on (the autoencoder's default: 96, STL-10; the "
                   "discriminator's is read off fc_1)")
    p.set_defaults(func=cmd_import_official)

    from .data import pack
    from .evaluation import commands as evaluation_commands
    from .inspection import commands as inspection_commands
    from .voc import commands as voc_commands

    # each package adds its own subcommands; their heavy imports happen only when a command runs
    evaluation_commands.register(sub)
    inspection_commands.register(sub)
    voc_commands.register(sub)
    pack.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if int(os.environ.get("RANK", 0)) > 0:  # under torchrun, only rank 0 reports progress
        level = logging.WARNING
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        check_outputs(args)
        args.func(args)
    except KeyboardInterrupt:
        hints = {"reproduce": "; run the same command again to continue"}
        hints.update({name: "; add --resume to the same command to continue"
                      for name in ("train-ae", "train-spot", "train-supervised", "train-rotnet")})
        print(f"spotart {args.command}: interrupted{hints.get(args.command, '')}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(f"spotart {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
