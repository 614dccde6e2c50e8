"""CLI commands of the evaluation package (registered by ``spotart.cli``).

Each command imports its module only when it runs, so ``spotart --help`` stays fast.
"""

from __future__ import annotations

import argparse
import shlex

DATA_ROOT_HELP = "where torchvision datasets (stl10, cifar10) lie (default ~/.cache/spotart/datasets)"


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0, got {text!r}")
    return values


def _add_network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="train-spot, train-supervised, train-rotnet or train-ae checkpoint "
                   "(train-ae: the encoder's layers)")
    p.add_argument("--init", choices=("checkpoint", "random"), default="checkpoint",
                   help="random: a freshly initialised discriminator (the random-init baseline; no --checkpoint)")
    p.add_argument("--image-size", type=int, help="default: the checkpoint's training size (96 for --init random)")
    p.add_argument("--data-root", default="~/.cache/spotart/datasets", help=DATA_ROOT_HELP)
    p.add_argument("--workers", type=int, default=2, help="image-decoding processes (default 2)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast where the hardware runs it fast (default)")
    p.add_argument("--seed", type=int, default=0, help="random init, subsets and held-out split (default 0)")


def _add_linear_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=10, help="epochs of each linear head (default 10)")
    p.add_argument("--weight-decays", type=_floats, default=(1e-3,), metavar="WD[,WD,...]",
                   help="L2 strength (default 1e-3); several are compared on a held-out 10%% of the training split")


def _linear_settings(args: argparse.Namespace, epochs: int):
    from .linear import LinearSettings

    return LinearSettings(epochs=epochs, weight_decays=args.weight_decays, seed=args.seed)


def _random_trunk_config(args: argparse.Namespace) -> dict[str, str] | None:
    """``--config``/``--set`` of ``probe --init random``: the train-spot keys that decide the fresh trunk."""
    if not args.config and not args.set:
        return None
    if args.init != "random":
        raise ValueError("--config and --set describe the network of --init random; a checkpoint carries its own")
    from ..config import build_config

    cfg = build_config("train-spot", args.config, args.set)
    return {"disc_init": cfg.disc_init, "disc_padding": cfg.disc_padding}


def cmd_probe(args: argparse.Namespace) -> None:
    from .probe import ProbeOptions, run_probe

    options = ProbeOptions(image_size=args.image_size, pool=args.pool, linear=_linear_settings(args, args.epochs),
                           max_train=args.max_train, max_val=args.max_val, batch_size=args.batch_size,
                           workers=args.workers, precision=args.precision, seed=args.seed,
                           keep_features=not args.no_cache, data_root=args.data_root,
                           random_config=_random_trunk_config(args))
    run_probe(args.train, args.val, args.out, args.checkpoint, args.init, options)


def cmd_finetune(args: argparse.Namespace) -> None:
    from .finetune import FinetuneOptions, run_finetune

    options = FinetuneOptions(mode=args.mode, folds=args.folds, max_folds=args.max_folds, image_size=args.image_size,
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
                              linear=_linear_settings(args, args.linear_epochs), workers=args.workers,
                              precision=args.precision, seed=args.seed, data_root=args.data_root)
    run_finetune(args.train, args.test, args.out, args.checkpoint, args.init, options)


def cmd_train_supervised(args: argparse.Namespace) -> None:
    from .supervised import build_supervised_config, train_supervised

    values = {"data": args.data, "image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
              "epochs": args.epochs}
    train_supervised(build_supervised_config(args.set, values), args.out, resume=args.resume)


def cmd_reproduce(args: argparse.Namespace) -> None:
    if args.print_results:  # for scripts: where the results are, nothing run
        from .reproduce.presets import get_preset, results_path

        print(results_path(get_preset(args.preset), args.work, args.results, args.print_results))
        return
    from .reproduce import run_reproduce

    run_reproduce(args.preset, args.data, args.work, args.results, args.models, args.set, args.ae_set,
                  args.command_line or _reproduce_command(args), args.seeds, args.variant, args.equal_time_to,
                  args.ae_config)


def _reproduce_command(args: argparse.Namespace) -> str:
    """The command as it would be typed, for the results file (rebuilt from the parsed flags)."""
    parts = ["spotart", "reproduce", "--preset", args.preset]
    for flag, value in (("--data", args.data), ("--work", args.work), ("--results", args.results),
                        ("--models", args.models), ("--seeds", args.seeds)):
        if value:
            parts += [flag, value]
    parts += [item for pair in args.set for item in ("--set", pair)]
    if args.ae_config:
        parts += ["--ae-config", args.ae_config]
    parts += [item for pair in args.ae_set for item in ("--ae-set", pair)]
    parts += [item for variant in args.variant for item in ("--variant", variant)]
    if args.equal_time_to != "full":
        parts += ["--equal-time-to", args.equal_time_to]
    return " ".join(shlex.quote(part) for part in parts)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the ``spotart`` parser."""
    p = sub.add_parser(
        "probe", help="linear probes on frozen conv1..conv5 (pooled to ~9k dims), all layers in one run",
        description="Linear classifiers on each frozen layer of a network (features average-pooled to about 9,000 "
        "dimensions, BatchNorm statistics frozen), trained on --train and tested on --val (class folders). Prints a "
        "per-layer top-1 table and writes OUT/probe.json; features are cached in OUT/features, so a re-run only "
        "trains the heads. The network is hashed before and after: the probe fails if it changed.")
    p.add_argument("--train", required=True, help="labelled training images: DIR/<class>/<image>, or stl10:train")
    p.add_argument("--val", required=True, help="labelled evaluation images (same classes), or stl10:test")
    p.add_argument("--out", required=True, help="output folder: probe.json and the feature cache")
    _add_network_flags(p)
    _add_linear_flags(p)
    p.add_argument("--pool", choices=("avg", "max"), default="avg", help="adaptive pooling of each layer (default avg)")
    p.add_argument("--max-train", type=int, help="probe on a fixed random subset of this many training images")
    p.add_argument("--max-val", type=int, help="evaluate on a fixed random subset of this many images")
    p.add_argument("--batch-size", type=int, default=128, help="images per forward pass when extracting (default 128)")
    p.add_argument("--no-cache", action="store_true", help="delete the extracted features when done")
    p.add_argument("--config", help="with --init random: a train-spot YAML whose disc_init and disc_padding the fresh "
                   "trunk takes (e.g. configs/official_stl10.yaml: the network that preset starts from)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --init random: disc_init=official|normal|default, disc_padding=symmetric|tf_same|centred")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser(
        "finetune", help="STL-10 protocols: fine-tune conv1..conv5 + MLP, or a linear layer on frozen conv5",
        description="--mode full (the paper): conv1..conv5 and a new MLP head trained with augmentation. --mode "
        "linear (the later official script): one linear layer on frozen conv5. With STL-10's ten training folds "
        "(--folds auto on stl10:train, or a fold_indices.txt) one model per fold, reported as mean ± std. Writes "
        "OUT/finetune.json.")
    p.add_argument("--train", required=True, help="labelled training images: DIR/<class>/<image>, or stl10:train")
    p.add_argument("--test", required=True, help="labelled test images (same classes), or stl10:test")
    p.add_argument("--out", required=True, help="output folder: finetune.json (and the conv5 cache in linear mode)")
    p.add_argument("--mode", choices=("full", "linear"), default="full", help="default: full")
    p.add_argument("--folds", default="auto",
                   help="auto (STL-10's folds when --train is stl10, else all training images), none, or a "
                   "fold_indices.txt / STL-10 root (ten lines of indices into the training images)")
    p.add_argument("--max-folds", type=int, help="run only the first N folds")
    _add_network_flags(p)
    p.add_argument("--epochs", type=int, default=30, help="full mode: epochs over each fold (default 30)")
    p.add_argument("--batch-size", type=int, default=64, help="full mode (default 64)")
    p.add_argument("--lr", type=float, default=1e-4, help="full mode: Adam learning rate, linearly decayed (1e-4)")
    p.add_argument("--hidden", type=int, default=4096, help="full mode: MLP head width (0: linear; default 4096)")
    p.add_argument("--linear-epochs", type=int, default=10, help="linear mode: epochs of the linear layer (10)")
    p.add_argument("--weight-decays", type=_floats, default=(1e-3,), metavar="WD[,WD,...]",
                   help="linear mode: L2 strength (1e-3); several are compared on a held-out 10%% of each fold")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "train-supervised", help="the same AlexNet trained with labels: the probes' upper bound",
        description="Train the discriminator's conv1..conv5 with an MLP head on class labels (official augmentation, "
        "Adam, schedule). The checkpoint (OUT/checkpoints/latest.pt, stage 'supervised') is read by probe and "
        "finetune like a train-spot one.")
    p.add_argument("--data", required=True, help="labelled images: DIR/<class>/<image>, or stl10 (train split)")
    p.add_argument("--out", required=True, help="run directory: config, metrics.jsonl, TensorBoard, checkpoints")
    p.add_argument("--image-size", type=int, help="96 (default), 64 or 32")
    p.add_argument("--batch-size", type=int, help="default 256")
    p.add_argument("--steps", type=int, help="optimiser steps (takes precedence over --epochs)")
    p.add_argument("--epochs", type=int, help="passes over the data (default 90)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training config key (lr, weight_decay, num_workers, precision, hidden, ...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.set_defaults(func=cmd_train_supervised)

    p = sub.add_parser(
        "reproduce", help="the paper's probe table and ablations at CPU scale (resumable)",
        description="Pretrain (stage 1 once, stage 2 for the full method and each ablation), train the supervised "
        "baseline, and probe them all plus the random init and the encoder, on ../shared/data/imagenette-96 "
        "(train: pretraining without labels; val: probe top-1). Re-running the same command continues where it "
        "stopped. Writes RESULTS/reproduce.json and RESULTS/reproduce.md (cifar-quick: reproduce-cifar10.*).")
    p.add_argument("--preset", choices=("tiny", "quick", "imagenette-64", "full", "cifar-quick"), default="quick",
                   help="quick: 64 px, about 45 min on 2 cores; imagenette-64: quick with 1,000 stage-2 steps per "
                   "row; full: 96 px, about 8 h; cifar-quick: CIFAR-10 at 32 px, about 2 h; tiny: toy images, seconds")
    p.add_argument("--data", help="folder with train/ and val/ or test/ (default ../shared/data/imagenette-96; "
                   "cifar-quick: ../shared/data/cifar10)")
    p.add_argument("--work", help="checkpoints and probes (default benchmarks/runs/reproduce-PRESET)")
    p.add_argument("--results", help="where reproduce.json/.md go (default benchmarks/results; tiny: WORK/results)")
    p.add_argument("--models", help="the rows to train and probe, comma-separated: full, no_repair, "
                   "unmasked_repair, twice, no_mask_loss, random, supervised, autoencoder, rotnet, rotnet_equal_time, "
                   "or a variant (of this command or already defined in WORK). A --variant left out is defined, not "
                   "trained (e.g. as --equal-time-to's reference). Default: the --variant rows when some are given, "
                   "else all the paper's models but the RotNet rows")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default 0): each model trained and probed once "
                   "per seed, the table shows mean ± std; the shared stage 1 is trained once")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="define an extra row (trained when --models names it or is not given): the full method "
                   "with these train-spot keys, from the same stage 1 (repeatable), "
                   "e.g. slow_repair:repair_lr_factor=0.3; config=FILE starts the row from a YAML file "
                   "(official:config=configs/official_stl10.yaml), init=random makes it a random-init row whose trunk "
                   "takes the file's or the keys' disc_init and disc_padding")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="train-spot config key for every stage-2 run (e.g. warmup_steps=100); ablation switches win. "
                   "The RotNet rows take the reference row's keys that train-rotnet has too (knn_*, lr, precision, "
                   "disc_init, ...)")
    p.add_argument("--ae-config", metavar="FILE",
                   help="train-ae YAML for the shared stage 1 (e.g. configs/official_stl10_ae.yaml, the stage 1 the "
                   "official variant expects); the preset's data, size, batch and steps override it, --ae-set after")
    p.add_argument("--ae-set", action="append", default=[], metavar="KEY=VALUE",
                   help="train-ae config key for the shared stage 1 (after --ae-config). A stage 1 already in WORK "
                   "that was trained with other values of these keys is refused, not reused")
    p.add_argument("--equal-time-to", default="full", metavar="ROW",
                   help="the stage-2 row (full, an ablation or a variant) whose images (rotnet) and stage 1 + 2 "
                   "training time at the same seed (rotnet_equal_time) the RotNet rows match (default full); it "
                   "need not be trained by this command: rotnet_equal_time then uses its finished runs in WORK")
    p.add_argument("--print-results", nargs="?", const="json", choices=("json", "seeds", "md"),
                   help="print the path of this preset's results file and exit, running nothing (for scripts): json "
                   "(the table, the default), seeds (every run: RESULTS/NAME-seeds.json) or md; takes --preset, "
                   "--work and --results into account")
    p.add_argument("--command-line", help=argparse.SUPPRESS)  # the command recorded in the results
    p.set_defaults(func=cmd_reproduce)
