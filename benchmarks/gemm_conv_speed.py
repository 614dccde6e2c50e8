"""oneDNN's convolution kernels against the same pass as ``unfold`` and one matrix product
(``spotart.models.gemm_conv``), per layer and pass, at the stage-2 shapes where the roofline found oneDNN far
below the bf16 ceiling (issue 25).

    PYTHONPATH=src python benchmarks/gemm_conv_speed.py --image-size 64 --reps 9

bf16, channels_last, batch 64 (C sees 128 images: real and repaired); each pass timed alone, the two kernels
interleaved rep by rep; median ms. A pass is worth switching when the matrix product is faster beyond the spread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from spotart.models.gemm_conv import dnn_grads, gemm_forward, gemm_input_grad, gemm_weight_grad, output_size

# (name, batch, in channels, out channels, kernel, stride, padding, groups, size at 64 px, size at 96 px)
LAYERS = [
    ("R block 0 conv1", 64, 513, 512, 3, 1, 1, 1, 4, 6),
    ("R block 0 conv2", 64, 512, 512, 3, 1, 1, 1, 4, 6),
    ("R block 1 conv1", 64, 257, 256, 3, 1, 1, 1, 8, 12),
    ("R block 1 conv2", 64, 256, 256, 3, 1, 1, 1, 8, 12),
    ("R block 2 conv2", 64, 128, 128, 3, 1, 1, 1, 16, 24),
    ("C conv1", 128, 3, 96, 11, 4, 0, 1, 71, 103),
    ("C conv2", 128, 96, 256, 5, 1, 2, 2, 8, 12),
    ("C conv3", 128, 256, 384, 3, 1, 1, 1, 4, 6),
    ("C conv4", 128, 384, 384, 3, 1, 1, 2, 4, 6),
    ("C conv5", 128, 384, 256, 3, 1, 1, 2, 4, 6),
]


def candidates(x, w, g, s, p, groups) -> dict:
    """Per pass: (oneDNN, matrix product), each a call with everything bound."""
    return {
        "forward": (lambda: F.conv2d(x, w, None, s, p, 1, groups), lambda: gemm_forward(x, w, None, s, p, groups)),
        "input_grad": (lambda: dnn_grads(g, x, w, False, s, p, groups, [True, False, False]),
                       lambda: gemm_input_grad(g, x, w, s, p, groups)),
        "weight_grad": (lambda: dnn_grads(g, x, w, False, s, p, groups, [False, True, False]),
                        lambda: gemm_weight_grad(g, x, w.shape, s, p, groups)),
    }


def timed(fn, reps_out: list[float]) -> None:
    start = time.perf_counter()
    fn()
    reps_out.append((time.perf_counter() - start) * 1e3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, choices=(64, 96), default=64)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--layers", default="", help="comma-separated substrings of layer names (default: all)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    wanted = [word.strip() for word in args.layers.split(",") if word.strip()]
    print(f"bf16, channels_last, {torch.get_num_threads()} threads, stage-2 shapes at {args.image_size} px; "
          f"median ms of {args.reps} interleaved reps")
    print()
    print("| layer | input (N, C, H, W) | pass | oneDNN ms | matrix product ms | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name, batch, cin, cout, k, stride, pad, groups, size64, size96 in LAYERS:
        if wanted and not any(word in name for word in wanted):
            continue
        size = size64 if args.image_size == 64 else size96
        x = torch.randn(batch, cin, size, size).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        w = (torch.randn(cout, cin // groups, k, k) * 0.05).to(torch.bfloat16)
        w = w.contiguous(memory_format=torch.channels_last)
        s, p = (stride, stride), (pad, pad)
        out_h, out_w = output_size(x.shape, w.shape, s, p)
        g = torch.randn(batch, cout, out_h, out_w).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        passes = candidates(x, w, g, s, p, groups)
        for pass_name, (dnn, gemm) in passes.items():
            if name == "C conv1" and pass_name == "forward":
                continue  # runs near the ceiling already
            dnn(), gemm()  # warm-up: oneDNN primitive creation, allocator
            times: dict[str, list[float]] = {"dnn": [], "gemm": []}
            for rep in range(args.reps):
                order = (("dnn", dnn), ("gemm", gemm)) if rep % 2 == 0 else (("gemm", gemm), ("dnn", dnn))
                for key, fn in order:
                    timed(fn, times[key])
            a, b = statistics.median(times["dnn"]), statistics.median(times["gemm"])
            print(f"| {name} | ({batch}, {cin}, {size}, {size}) | {pass_name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
