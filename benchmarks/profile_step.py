"""Where a training step's time goes: torch.profiler over a few steps of stage 1 or stage 2 (bf16, channels_last).

    PYTHONPATH=src python benchmarks/profile_step.py --stage 2 --image-size 96 --batch-size 64 --steps 2

prints the operators by self time (CPU) or device time (CUDA), the share of the step each takes, and the
images/s of the profiled steps; ``--trace FILE`` also writes a Chrome trace.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from spotart import bench
from spotart.config import build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps (after one untimed warm-up step)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--trace", help="write a Chrome trace here")
    args = parser.parse_args()
    device = bench.resolve_device(args.device)
    pairs = [f"image_size={args.image_size}", f"batch_size={args.batch_size}", "steps=1000"]
    cfg = build_config("train-ae" if args.stage == 1 else "train-spot", set_pairs=pairs)
    runtime = bench._runtime("auto", "auto", device)
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size) * 2 - 1
    step = (bench._stage1 if args.stage == 1 else bench._stage2)(cfg, runtime, images)
    step()
    bench._sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        bench._sync(device)
    seconds = time.perf_counter() - start
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"stage {args.stage}, {runtime.describe()}, {args.image_size} px, batch {args.batch_size}: "
          f"{args.batch_size * args.steps / seconds:.1f} img/s under the profiler")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
