"""CLI commands of the inspection package (registered by ``spotart.cli``)."""

from __future__ import annotations

import argparse
import sys


def cmd_report(args: argparse.Namespace) -> None:
    from .report import build_report

    path = build_report(args.run_dir, args.out, args.probe, count=args.images, seed=args.seed,
                        checkpoint=args.checkpoint)
    print(f"report written: {path}")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_backbone

    info = export_backbone(args.checkpoint, args.out)
    print(f"backbone written: {args.out} (conv1..conv5 of step {info.step}, trained at {info.image_size} px); "
          "load it with spotart.load_backbone(path)")


def cmd_spot(args: argparse.Namespace) -> None:
    from .spotter import ArtifactSpotter, SpotError, spot_files

    spotter = ArtifactSpotter.from_checkpoint(args.checkpoint)
    failures = spot_files(args.images, spotter, args.out_dir,
                          complain=lambda line: print(f"spotart spot: {line}", file=sys.stderr))
    if failures:
        raise SpotError(f"{failures} of {len(args.images)} inputs could not be judged (named above)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the ``spotart`` parser."""
    p = sub.add_parser("report", help="one offline HTML page of a stage-2 run: figures, curves, probe results",
                       description="Write one self-contained HTML page (opens offline) for a train-spot run: real "
                       "and repaired images with true and predicted masks, damage-and-repair panels on fixed "
                       "images, every loss and accuracy curve, and the linear-probe table when one was run.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a train-spot run directory")
    p.add_argument("--out", help="the HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--probe", action="append", default=[], metavar="FILE",
                   help="probe.json to include (repeatable; default: RUN_DIR/probe.json and RUN_DIR/*/probe.json)")
    p.add_argument("--checkpoint", metavar="CKPT", help="which of the run's checkpoints to draw, e.g. "
                   "RUN_DIR/checkpoints/step_0001000.pt (default: RUN_DIR/checkpoints/latest.pt)")
    p.add_argument("--images", type=int, default=8, help="how many fixed images the panels show (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the panels' keep masks (default 0)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="save the discriminator trunk (conv1..conv5) as safetensors",
                       description="Save the trained discriminator's conv1..conv5 as a plain PyTorch module's "
                       "weights in safetensors; load it with spotart.load_backbone(FILE).")
    p.add_argument("checkpoint", metavar="CKPT", help="a train-spot checkpoint, or its run directory")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write, e.g. backbone.safetensors")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("spot", help="use the discriminator as an artifact detector on image files",
                       description="Print the probability that each image is real (to the discriminator: an "
                       "autoencoder reconstruction rather than a repaired decoding) and save a heat map of where it "
                       "sees artifacts as <name>_artifacts.png beside each input. Each image's centre square is "
                       "resized to the checkpoint's image size.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a train-spot checkpoint, or its run directory")
    p.add_argument("--out-dir", help="write the heat maps here instead of beside each input")
    p.set_defaults(func=cmd_spot)
