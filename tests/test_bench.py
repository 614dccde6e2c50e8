"""``spotart bench``: its FLOP counting is exact, and one small run reports every key the issue asks for."""

from __future__ import annotations

import math

import pytest
import torch

from spotart import bench

REQUIRED = ("stage1_images_per_s", "stage2_images_per_s", "stage2_fraction_of_bf16_peak",
            "stage2_speedup_vs_fp32_eager", "data_images_per_s", "peak_memory_gib", "adam_step_s_fused",
            "adam_step_s_per_parameter")


def test_count_flops_of_a_matrix_product_is_exact():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert bench.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_time_steps_counts_images_per_second():
    calls = []
    rate = bench.time_steps(lambda: calls.append(1), images_per_step=10, warmup=2, steps=3,
                            device=torch.device("cpu"))
    assert len(calls) == 5 and rate > 0


def test_small_run_reports_every_key(image_folder, monkeypatch):
    real = bench.matmul_tflops
    monkeypatch.setattr(bench, "matmul_tflops", lambda dtype, device: real(dtype, device, size=256, seconds=0.05))
    result = bench.run_bench(str(image_folder), image_size=32, batch_size=4, steps=1, warmup=0, fp32_steps=1,
                             num_workers=0)
    for key in REQUIRED:
        assert key in result and math.isfinite(result[key]) and result[key] > 0, key
    # stage 2 runs the frozen autoencoder, the repair network and the discriminator: more work than stage 1
    assert result["stage2_gflop_per_image"] > result["stage1_gflop_per_image"] > 0
    assert result["stage2_tflops"] == pytest.approx(result["stage2_images_per_s"] * result["stage2_gflop_per_image"]
                                                    / 1e3)
    table = bench.format_table(result)
    assert "Adam step (disc.)" in table and "stage 2, fp32 eager" in table
