"""Where a stage-2 step's time goes, against a RotNet step on the same trunk: seconds per step of each part.

    PYTHONPATH=src python benchmarks/step_parts.py --config configs/official_stl10.yaml --set precision=auto \
        --image-size 32 --batch-size 128 --rounds 3 --steps 5

Times, in alternating rounds (so that a change in the machine's load hits every part alike), on one synthetic
batch of B source images:

- ``stage 2``: one ``spot_step`` as training runs it (C and R both updated);
- ``stage 2, R not updated``: the same step as on a warm-up step, where R's graph is not built (the generator
  runs under ``no_grad``, C is updated);
- ``generator forward``: the frozen encoder, the damage, the repair network and the frozen decoder under
  ``no_grad``, which both steps above begin with;
- ``RotNet``: one ``rotnet_step``, the four rotations of the B images through the trunk and RotNet's head.

From these, per step: C's update (its forward and backward on the 2B reconstructed and repaired images, and Adam)
is ``stage 2, R not updated`` minus ``generator forward``, and R's update (building R's graph, the backward
through C and the decoder into R, and R's Adam) is ``stage 2`` minus ``stage 2, R not updated``. Each figure is
the median over rounds of the mean step time in that round. ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Callable
from typing import Any

import torch

from spotart import bench
from spotart.config import ROTNET_SHARED_KEYS, RotNetConfig, build_config, config_from_dict, config_to_dict
from spotart.models import AutoEncoder, RotNet
from spotart.train.nonfinite import NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.rotnet import rotnet_step
from spotart.train.stage2 import build_models, spot_step

PARTS = ("stage 2", "stage 2, R not updated", "generator forward", "RotNet")


@dataclasses.dataclass
class Parts:
    """The four timed callables of the module docstring (``steps``, in ``PARTS`` order), and what they update."""

    steps: dict[str, Callable[[], Any]]
    runtime: str  # Runtime.describe(): device, precision, memory format
    repair: torch.nn.Module
    discriminator: torch.nn.Module
    rotnet: torch.nn.Module
    rotnet_config: RotNetConfig


def build_parts(config: str | None, set_pairs: list[str], images: torch.Tensor, device: torch.device) -> Parts:
    """Stage 2 and RotNet on ``images`` (B source images) with one config: stage 2's, and RotNet's share of it."""
    size, batch = images.shape[-1], images.shape[0]
    pairs = [*set_pairs, f"image_size={size}", f"batch_size={batch}", "steps=1000"]
    spot_cfg = build_config("train-spot", config, pairs)
    # RotNet takes the stage-2 config's keys that it has, as reproduce's RotNet rows do
    spot_values = config_to_dict(spot_cfg)
    shared = {key: spot_values[key] for key in ROTNET_SHARED_KEYS & spot_values.keys()}
    rotnet_cfg = config_from_dict("train-rotnet", shared)
    runtime = bench._runtime(spot_cfg.precision, spot_cfg.channels_last, device)
    x = runtime.to_device(images)

    models = build_models(spot_cfg, AutoEncoder(), runtime)
    models.generator.train()
    models.discriminator.train()
    generate = models.forward_generator
    mask_generator = torch.Generator(device=runtime.device).manual_seed(0)
    guard = NonFiniteGuard.for_device(runtime.device)
    # spot_step updates R at step s when s >= warmup_steps and s % repair_every == 0: at step 0 that is whether
    # there is a warm-up
    both_updated = dataclasses.replace(spot_cfg, warmup_steps=0)
    c_only = dataclasses.replace(spot_cfg, warmup_steps=1)

    def generator_forward() -> None:
        with torch.no_grad(), runtime.autocast():
            generate(x, mask_generator)

    model = RotNet(size, rotnet_cfg.rotnet_hidden, rotnet_cfg.disc_padding, rotnet_cfg.disc_init)
    model.to(runtime.device, memory_format=runtime.memory_format).train()
    optimizer = make_adam(model, rotnet_cfg)
    rotnet_guard = NonFiniteGuard.for_device(runtime.device)
    steps = {
        "stage 2": lambda: spot_step(models, x, both_updated, runtime, 0, mask_generator, guard),
        "stage 2, R not updated": lambda: spot_step(models, x, c_only, runtime, 0, mask_generator, guard),
        "generator forward": generator_forward,
        "RotNet": lambda: rotnet_step(model, model, x, optimizer, runtime, rotnet_guard),
    }
    return Parts(steps, runtime.describe(), models.generator.repair, models.discriminator, model, rotnet_cfg)


def measure(parts: dict[str, Callable[[], Any]], rounds: int, steps: int, device: torch.device,
            warmup: int = 1) -> dict[str, float]:
    """Median over ``rounds`` of each part's mean seconds per call; the parts alternate within each round."""
    per_round: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(rounds):
        for name, part in parts.items():
            times = bench.step_seconds(part, warmup, steps, device)
            per_round[name].append(sum(times) / len(times))
    return {name: statistics.median(values) for name, values in per_round.items()}


def summarise(seconds: dict[str, float], batch: int) -> dict[str, dict[str, float]]:
    """Each part and the derived updates of C and R: seconds per step, source images/s, and the ratio to RotNet."""
    rows = dict(seconds)
    rows["C's update"] = seconds["stage 2, R not updated"] - seconds["generator forward"]
    rows["R's update"] = seconds["stage 2"] - seconds["stage 2, R not updated"]
    rotnet = seconds["RotNet"]
    return {name: {"seconds_per_step": value, "share_of_stage2": value / seconds["stage 2"],
                   "images_per_s": batch / value if value > 0 else float("inf"), "x_rotnet": value / rotnet}
            for name, value in rows.items()}


def format_table(rows: dict[str, dict[str, float]], heading: str) -> str:
    lines = [heading, "", "| part | s/step | share of a stage-2 step | source images/s | x RotNet's step |",
             "|---|---:|---:|---:|---:|"]
    for name in ("stage 2", "generator forward", "C's update", "R's update", "stage 2, R not updated", "RotNet"):
        row = rows[name]
        rate = f"{row['images_per_s']:.0f}" if name in ("stage 2", "stage 2, R not updated", "RotNet") else "-"
        lines.append(f"| {name} | {row['seconds_per_step']:.3f} | {100 * row['share_of_stage2']:.0f}% | {rate} | "
                     f"{row['x_rotnet']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a YAML config for stage 2 (e.g. configs/official_stl10.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each part per round")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    device = bench.resolve_device(args.device)
    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1
    parts = build_parts(args.config, args.set, images, device)
    rows = summarise(measure(parts.steps, args.rounds, args.steps, device), args.batch_size)
    heading = (f"{bench.device_name(device)}, {parts.runtime}, {args.image_size} px, batch {args.batch_size}, "
               f"config {args.config or 'defaults'} {' '.join(args.set)}: median of {args.rounds} rounds of "
               f"{args.steps} steps")
    print(format_table(rows, heading))
    result = {"heading": heading, "image_size": args.image_size, "batch_size": args.batch_size,
              "config": args.config, "set": args.set, "parts": rows}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return result


if __name__ == "__main__":
    main()
