"""The decoder's bilinear x2, forward and backward, at each decoder stage's shape (batch 64 at 96 px, bf16,
channels_last): PyTorch's half-pixel ``F.interpolate``, TF1's legacy rule as spotart computes it
(``spotart.models.autoencoder.tf_legacy_upsample2x``), and the same rule composed of ``cat``/``stack`` views (the
first implementation, kept here as the reference). Interleaved, median of ``--reps``.

    PYTHONPATH=src python benchmarks/upsample_speed.py --reps 15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from spotart.models.autoencoder import tf_legacy_upsample2x


def composed(h: torch.Tensor) -> torch.Tensor:
    """TF1's legacy x2 from generic ops (``cat``, ``stack``, ``flatten``): same values, autograd's own backward."""

    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        size = x.shape[dim]
        following = torch.cat([x.narrow(dim, 1, size - 1), x.narrow(dim, size - 1, 1)], dim)
        return torch.stack([x, x + (following - x) * 0.5], dim=dim + 1).flatten(dim, dim + 1)

    out = along(along(h, 3), 2)
    return out.contiguous(memory_format=torch.channels_last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args(argv)
    methods = {"half_pixel": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
               "tf_legacy": tf_legacy_upsample2x, "tf_legacy composed": composed}
    print("| input (64, C, S, S) | " + " | ".join(f"{name} (ms)" for name in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for channels, side in ((512, 6), (256, 12), (128, 24), (64, 48)):
        x = torch.randn(64, channels, side, side).to(memory_format=torch.channels_last).bfloat16().requires_grad_()
        grad = torch.randn(64, channels, 2 * side, 2 * side).bfloat16().to(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {name: [] for name in methods}
        for round_ in range(args.reps + 2):
            for name, method in methods.items():
                start = time.perf_counter()
                method(x).backward(grad)
                if round_ >= 2:
                    times[name].append(time.perf_counter() - start)
        print(f"| C={channels}, S={side} | " + " | ".join(f"{statistics.median(times[name]) * 1e3:.1f}"
                                                       for name in methods) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
