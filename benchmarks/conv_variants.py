"""Candidate rewrites of the stage-2 step's slowest convolutions, each timed against the convolution as spotart runs
it, interleaved in one process (median of ``--reps``; bf16 autocast, channels_last, batch 64 at 96 px).

    PYTHONPATH=src python benchmarks/conv_variants.py --reps 12

1. R's first convolution over ``cat[h, keep_mask]`` (513/257/129/65/33 input channels, odd counts that AMX kernels
   do not like): as it is, against two convolutions (``h`` alone with 512/256/... channels, plus the mask's one).
2. The decoder's last convolution (32 -> 3 channels at 96 px): as it is, against its output padded to 8 or 16
   channels with zero filters.
3. The encoder's first convolution (3 -> 32 channels at 96 px, forward only): as it is, against its input padded
   to 4 or 16 channels.
4. Weight gradients at C's and R's 6 x 6 layers: oneDNN's ``convolution_backward`` against ``unfold`` and one
   matrix product.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

CL = torch.channels_last


def bench(candidates: dict, reps: int) -> dict[str, float]:
    """Median milliseconds of each candidate, the candidates taking turns so that a slow spell hits all of them."""
    for work in candidates.values():
        work()
        work()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(reps):
        for name, work in candidates.items():
            start = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(values) * 1e3, 1) for name, values in times.items()}


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _repair_case(channels: int, side: int, input_grad: bool, reps: int) -> str:
    h = torch.randn(64, channels, side, side).to(memory_format=CL).bfloat16().requires_grad_(input_grad)
    mask = (torch.rand(64, 1, side, side) > 0.7).bfloat16().to(memory_format=CL)
    weight = (torch.randn(channels, channels + 1, 3, 3) * 0.02).requires_grad_(True)
    grad = torch.randn(64, channels, side, side).bfloat16().to(memory_format=CL)

    def concatenated():
        with autocast():
            out = F.conv2d(torch.cat([h, mask], 1), weight, padding=1)
        out.backward(grad)

    def split():
        with autocast():
            out = F.conv2d(h, weight[:, :channels], padding=1) + F.conv2d(mask, weight[:, channels:], padding=1)
        out.backward(grad)

    return (f"| R's conv1, {channels + 1} -> {channels} at {side} px, forward and backward | "
            f"{bench({'as it is': concatenated, 'split': split}, reps)} |")


def repair_first_conv(reps: int) -> list[str]:
    return [_repair_case(channels, side, input_grad, reps) for channels, side, input_grad in
            ((512, 6, False), (256, 12, True), (128, 24, True), (64, 48, True), (32, 96, True))]


def decoder_last_conv(reps: int) -> list[str]:
    h = torch.randn(64, 32, 96, 96).to(memory_format=CL).bfloat16().requires_grad_(True)
    weight, bias = torch.randn(3, 32, 3, 3), torch.zeros(3)
    grad = torch.randn(64, 3, 96, 96).bfloat16().to(memory_format=CL)

    def padded(extra: int):
        def work():
            with autocast():
                out = F.conv2d(h, F.pad(weight, (0, 0, 0, 0, 0, 0, 0, extra)), F.pad(bias, (0, extra)), padding=1)
            out[:, :3].backward(grad)
        return work

    times = bench({"as it is": padded(0), "8 outputs": padded(5), "16 outputs": padded(13)}, reps)
    return [f"| decoder's to_rgb, 32 -> 3 at 96 px, forward and input gradient | {times} |"]


def encoder_first_conv(reps: int) -> list[str]:
    x = torch.randn(64, 3, 96, 96).to(memory_format=CL)
    weight = torch.randn(32, 3, 3, 3)

    def padded(extra: int):
        def work():
            with torch.no_grad(), autocast():
                F.conv2d(F.pad(x, (0, 0, 0, 0, 0, extra)), F.pad(weight, (0, 0, 0, 0, 0, extra)), padding=1)
        return work

    times = bench({"as it is": padded(0), "4 inputs": padded(1), "16 inputs": padded(13)}, reps)
    return [f"| encoder's conv0, 3 -> 32 at 96 px, forward | {times} |"]


def _weight_grad_case(batch: int, channels: int, out: int, side: int, groups: int, what: str, reps: int) -> str:
    x = torch.randn(batch, channels, side, side).bfloat16().to(memory_format=CL)
    weight = torch.randn(out, channels // groups, 3, 3).bfloat16()
    grad = torch.randn(batch, out, side, side).bfloat16().to(memory_format=CL)

    def onednn():
        return torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0],
                                                   groups, [False, True, False])[1]

    def unfold_matmul():
        columns = F.unfold(x, 3, padding=1).reshape(batch, groups, (channels // groups) * 9, side * side)
        per_group = grad.contiguous().reshape(batch, groups, out // groups, side * side)
        return torch.einsum("bgol,bgkl->gok", per_group, columns).reshape(out, channels // groups, 3, 3)

    return (f"| {what} weight gradient, ({batch}, {channels}, {side}, {side}) | "
            f"{bench({'oneDNN': onednn, 'unfold + matmul': unfold_matmul}, reps)} |")


def small_weight_gradients(reps: int) -> list[str]:
    return [_weight_grad_case(*case, reps) for case in ((64, 513, 512, 6, 1, "R's block 0 conv1"),
                                                      (64, 512, 512, 6, 1, "R's block 0 conv2"),
                                                      (128, 256, 384, 6, 1, "C's conv3"),
                                                      (128, 384, 384, 6, 2, "C's conv4"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=12)
    args = parser.parse_args(argv)
    print("| convolution | median ms per candidate |")
    print("|---|---|")
    for section in (repair_first_conv, decoder_last_conv, encoder_first_conv, small_weight_gradients):
        for row in section(args.reps):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
