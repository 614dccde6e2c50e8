"""Where a training step's time goes: torch.profiler over a few steps of stage 1 or stage 2, as training runs them.

    PYTHONPATH=src python benchmarks/profile_step.py --stage 2 --image-size 96 --batch-size 64 --steps 2
    PYTHONPATH=src python benchmarks/profile_step.py --stage 2 --image-size 64 --config configs/official_stl10.yaml \
        --ae-config configs/official_stl10_ae.yaml --set precision=auto

The step is ``spotart bench``'s (``bench.build_step``): the configs' precision and layout (by default bf16 and
channels_last where the hardware runs them fast) and, for stage 2, the autoencoder of ``--ae-config``.

Prints, for the profiled steps: the share of the time each kind of work takes (convolutions forward and backward,
matrix products, BatchNorm, casts and layout copies, upsampling, the rest); the FLOP rate of the compute kinds
against the bf16 matmul ceiling measured just before (best burst, ``bench.matmul_rates``); then the operators by
self time. ``--trace FILE`` also writes a Chrome trace. On CUDA, times are the kernels' device times.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from step_options import add_step_arguments
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from spotart import bench

# profiler operator name -> kind of work; the first matching fragment wins
KINDS = (
    ("convolution_backward", "convolution backward"),
    ("mkldnn_convolution", "convolution forward"),
    ("cudnn_convolution", "convolution forward"),
    ("aten::convolution", "convolution forward"),
    ("aten::mm", "matrix products"),
    ("aten::addmm", "matrix products"),
    ("aten::bmm", "matrix products"),
    ("batch_norm", "batch norm"),
    ("aten::copy_", "casts and layout copies"),
    ("upsample", "upsampling"),
)
# flop counter operator -> kind of work
FLOP_KINDS = {"convolution": "convolution forward", "convolution_backward": "convolution backward",
              "mm": "matrix products", "addmm": "matrix products", "bmm": "matrix products"}


def kind_of(name: str) -> str:
    return next((kind for fragment, kind in KINDS if fragment in name), "element-wise and the rest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_arguments(parser)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps (after one untimed warm-up step)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--trace", help="write a Chrome trace here")
    args = parser.parse_args()
    _, runtime, step = bench.build_step(args.stage, args.image_size, args.batch_size, args.set, args.config,
                                        args.ae_config, args.device)
    device = runtime.device
    step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops: dict[str, float] = defaultdict(float)
    for op, count in counter.get_flop_counts()["Global"].items():
        flops[FLOP_KINDS.get(op.__name__.split(".")[0], "element-wise and the rest")] += count * args.steps
    _, ceiling = bench.matmul_rates(torch.bfloat16, device)
    bench._sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        bench._sync(device)
    seconds = time.perf_counter() - start
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    spent: dict[str, float] = defaultdict(float)
    for event in events:
        spent[kind_of(event.key)] += getattr(event, attr) / 1e6
    total = sum(spent.values())
    print(f"stage {args.stage}, {runtime.describe()}, {args.image_size} px, batch {args.batch_size}, "
          f"{args.steps} steps: {args.batch_size * args.steps / seconds:.1f} img/s under the profiler; "
          f"bf16 matmul ceiling {ceiling:.3f} TFLOP/s (best burst, measured just before)")
    print(f"{'kind of work':<28}{'time':>8}{'TFLOP/s':>10}{'of ceiling':>12}")
    for kind, secs in sorted(spent.items(), key=lambda item: -item[1]):
        rate = flops.get(kind, 0.0) / max(secs, 1e-9) / 1e12
        shown = f"{rate:>10.3f}{100 * rate / ceiling:>11.0f}%" if kind in flops else ""
        print(f"{kind:<28}{100 * secs / total:>7.1f}%{shown}")
    all_flops = sum(flops.values())
    print(f"{'whole step':<28}{100.0:>7.1f}%{all_flops / total / 1e12:>10.3f}"
          f"{100 * all_flops / total / 1e12 / ceiling:>11.0f}%")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
