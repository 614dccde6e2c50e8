"""The data pipeline's share of a stage-2 training step at 64 px (issue 25), on the CPU at hand.

    PYTHONPATH=src python benchmarks/loader_share.py --data ../shared/data/imagenette-96/train \
        --autoencoder /work/budget-study/stage1/autoencoder/run/checkpoints/latest.pt --rounds 2

Three figures, each from a fresh process, the settings interleaved round by round:

- **step alone**: the stage-2 step of ``configs/official_stl10.yaml`` (precision=auto, 64 px, batch 64, the
  official ``tf_legacy`` decoder) on one fixed batch already in memory: what the step costs without any loader;
- **loader alone**: batches/s of the training loader (decode, augment, collate) with nothing else running, per
  ``num_workers``: what the pipeline could deliver if it had the machine to itself;
- **training**: ``spotart train-spot`` as a user runs it (kNN monitor, image grids and checkpoints out of the
  window), seconds per step from metrics.jsonl's ``wall_s`` between ``--skip`` and the last step, per loader
  setting (``num_workers``, ``gpu_augment``).

The loader's share is 1 - step alone / training: what the pipeline costs the step on a machine whose cores the
step itself uses. Medians over rounds; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/official_stl10.yaml"

STEP_ALONE = r"""
import json, sys, time, torch
from spotart.bench import _runtime
from spotart.config import build_config
from spotart.models.autoencoder import AutoEncoder
from spotart.train.stage2 import build_models, spot_step
from spotart.train.nonfinite import NonFiniteGuard
args = json.loads(sys.argv[1])
cfg = build_config("train-spot", args["config"], set_pairs=args["pairs"])
runtime = _runtime(cfg.precision, cfg.channels_last, torch.device("cpu"), cfg.gemm_weight_grads)
models = build_models(cfg, AutoEncoder(upsampling="tf_legacy"), runtime)
models.generator.train(); models.discriminator.train()
x = runtime.to_device(torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size) * 2 - 1)
mask_gen = torch.Generator().manual_seed(0)
guard = NonFiniteGuard.for_device(runtime.device)
for _ in range(3):
    spot_step(models, x, cfg, runtime, step=1, mask_generator=mask_gen, guard=guard)
start = time.perf_counter()
for _ in range(args["steps"]):
    spot_step(models, x, cfg, runtime, step=1, mask_generator=mask_gen, guard=guard)
print(json.dumps({"s_per_step": (time.perf_counter() - start) / args["steps"]}))
"""

LOADER_ALONE = r"""
import json, sys, time
from spotart.config import build_config
from spotart.data.loader import training_loader
args = json.loads(sys.argv[1])
cfg = build_config("train-spot", args["config"], set_pairs=args["pairs"])
loader, sampler, source = training_loader(cfg)
batches = iter(loader)
for _ in range(3):
    next(batches)
start = time.perf_counter()
for _ in range(args["steps"]):
    next(batches)
print(json.dumps({"s_per_batch": (time.perf_counter() - start) / args["steps"]}))
"""


def child(code: str, payload: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(payload)], env=env, capture_output=True, text=True,
                         cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"loader_share.py: a child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def training(pairs: list[str], steps: int, skip: int) -> float:
    """Seconds per step of a short ``train-spot`` run, from its metrics between step ``skip`` and the last."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "spotart", "train-spot", "--config", CONFIG, "--out", out,
                   *[word for pair in pairs for word in ("--set", pair)]]
        done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, cwd=REPO,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"loader_share.py: train-spot failed:\n{done.stderr[-2000:]}")
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    wall = {row["step"]: row["wall_s"] for row in rows if "wall_s" in row and "c_loss" in row}
    return (wall[steps] - wall[skip]) / (steps - skip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an image folder (the study's: imagenette-96/train)")
    parser.add_argument("--autoencoder", required=True, help="a stage-1 checkpoint trained as official_stl10_ae")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="training steps per run (logged every 10)")
    parser.add_argument("--skip", type=int, default=20, help="steps left out of the window (warm-up)")
    parser.add_argument("--workers", default="0,1,2", help="num_workers settings of the loader")
    args = parser.parse_args(argv)
    if args.steps % 10 or args.skip % 10 or args.skip >= args.steps:
        parser.error("--steps and --skip must be multiples of 10 (the log interval), --skip below --steps")
    base = [f"data={args.data}", "image_size=64", "batch_size=64", "precision=auto", "seed=0"]
    train_base = [*base, f"autoencoder={args.autoencoder}", f"steps={args.steps}", "log_every=10",
                  "image_every=100000", f"checkpoint_every={args.steps}", "progress=false"]
    workers = [int(w) for w in args.workers.split(",")]
    settings = {f"num_workers={w}{', gpu_augment' if gpu else ''}":
                [f"num_workers={w}", f"gpu_augment={str(gpu).lower()}"] for gpu in (False, True) for w in workers}
    alone: list[float] = []
    loader: dict[int, list[float]] = {w: [] for w in workers}
    trained: dict[str, list[float]] = {name: [] for name in settings}
    for index in range(args.rounds):
        alone.append(child(STEP_ALONE, {"config": CONFIG, "pairs": [*base, "steps=1000"], "steps": 10})["s_per_step"])
        for w in workers:
            pairs = [*base, "steps=1000", f"num_workers={w}"]
            loader[w].append(child(LOADER_ALONE, {"config": CONFIG, "pairs": pairs, "steps": 30})["s_per_batch"])
        names = list(settings) if index % 2 == 0 else list(reversed(settings))
        for name in names:
            trained[name].append(training([*train_base, *settings[name]], args.steps, args.skip))
        print(f"# round {index + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    step = statistics.median(alone)
    print(f"stage 2, 64 px, batch 64, {CONFIG} precision=auto, tf_legacy decoder; medians of {args.rounds} rounds")
    print(f"step alone (one batch in memory): {step:.3f} s/step (runs {', '.join(f'{s:.3f}' for s in alone)})")
    print()
    print("| loader alone | s per batch of 64 | images/s |")
    print("|---|---|---|")
    for w in workers:
        median = statistics.median(loader[w])
        print(f"| num_workers={w} | {median:.3f} | {64 / median:.0f} |")
    print()
    print("| training (train-spot) | s/step | runs | loader's share (1 - step alone / this) |")
    print("|---|---|---|---|")
    for name, runs in trained.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.3f} | {', '.join(f'{r:.3f}' for r in runs)} | {1 - step / median:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
