"""benchmarks/gpu_check.sh: the CPU smoke run end to end and its report; how steps are sized; and the GPU tests
that the check runs on a GPU machine (nccl and SyncBatchNorm), skipped without CUDA."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .helpers import REPO, load_benchmark, write_images

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _gpu_check_module():
    return load_benchmark("gpu_check")


def test_steps_are_sized_from_the_measured_rate_and_clamped():
    gpu_check = _gpu_check_module()
    budget = gpu_check.Budget.gpu()  # batch 256, 25 s start-up, safety 0.8, 20 to 200,000 steps
    assert gpu_check.steps_for(125.0, 2560.0, budget) == 800  # (125 - 25) s x 0.8 x 2560 img/s / 256
    assert gpu_check.steps_for(26.0, 2560.0, budget) == 20  # too little time: the minimum
    assert gpu_check.steps_for(125.0, None, budget) == 20  # no measurement: the minimum
    assert gpu_check.steps_for(125.0, float("nan"), budget) == 20
    assert gpu_check.steps_for(1e9, 1e6, budget) == 200_000


def test_cpu_smoke_runs_every_phase_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", str(out)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log", "gpu_check.md"]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "cpu-smoke" and report["bench"]["device"] == "cpu"
    assert 0 < report["wall_s"] < report["deadline_s"]
    for key in ("bf16_matmul_tflops", "stage1_images_per_s", "stage2_images_per_s", "stage2_fraction_of_bf16_peak",
                "data_images_per_s", "peak_memory_gib"):
        assert math.isfinite(report["bench"][key]) and report["bench"][key] > 0, key
    for stage in ("stage1", "stage2"):
        record = report["stages"][stage]
        assert (record["steps"], record["planned_steps"], record["images"]) == (2, 2, 16), stage
        assert not record["timed_out"] and record["returncode"] == 0
        for key in ("seconds", "train_images_per_s", "bench_images_per_s", "train_fraction_of_bf16_ceiling"):
            assert math.isfinite(record[key]) and record[key] > 0, (stage, key)
    for name in ("trained", "random"):
        assert all(0 <= report["probes"][name][layer] <= 100 for layer in LAYERS), name
        assert report["probes"][name]["val_images"] == 12
    assert [p["name"] for p in report["phases"]] == ["bench", "stage1", "stage2", "probe trained", "probe random",
                                                     "gpu tests"]
    assert all(p["returncode"] == 0 and not p["timed_out"] for p in report["phases"])
    assert "skipped" in report["gpu_tests"]["summary"]  # the CUDA tests skip on the CPU
    markdown = (out / "gpu_check.md").read_text()
    assert "| stage1 | 2 (2) | 16 |" in markdown and "| stage2 | 2 (2) | 16 |" in markdown
    probe_rows = [line for line in markdown.splitlines() if line.startswith("| conv")]
    assert len(probe_rows) == 5 and "n/a" not in "".join(probe_rows)
    assert "bf16 matmul ceiling" in markdown


def test_cpu_smoke_without_pytest_skips_the_gpu_tests_and_exits_0(tmp_path):
    """pytest hidden from the script's Python (a package on PYTHONPATH whose import fails as a missing module's does):
    the check finds it missing by importing it there, skips the GPU tests with one line saying why, and the
    measurements decide the exit status."""
    hidden = tmp_path / "hide-pytest" / "pytest"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pytest'\", name='pytest')\n")
    out = tmp_path / "out"
    path = os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    assert subprocess.run([sys.executable, "-c", "import pytest"], env=env, capture_output=True).returncode != 0
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", str(out)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    said = [line for line in result.stdout.splitlines() if line.startswith("== gpu tests")]
    assert said == [f"== gpu tests: skipped (pytest is not importable by {sys.executable}: ModuleNotFoundError: "
                    "No module named 'pytest')"], said
    report = json.loads((out / "gpu_check.json").read_text())
    assert [p["name"] for p in report["phases"]] == ["bench", "stage1", "stage2", "probe trained", "probe random",
                                                     "gpu tests"]
    assert all(p["returncode"] == 0 and not p["timed_out"] for p in report["phases"][:-1])
    assert report["phases"][-1]["skipped"].startswith("pytest is not importable") and "gpu_tests" not in report
    assert report["stages"]["stage2"]["steps"] == 2 and set(report["probes"]) == {"trained", "random"}
    assert "| gpu tests |  |  | pytest is not importable" in (out / "gpu_check.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_nccl_process_group_and_sync_batchnorm_on_one_gpu(tmp_path):
    """One rank: nccl starts, its collectives run, and SyncBatchNorm converted from BatchNorm computes the same
    outputs and gradients (with one rank it takes PyTorch's plain batch-norm path; two ranks need two GPUs)."""
    import torch.distributed as dist
    from torch import nn

    from spotart.train import distributed as dist_utils

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        device = torch.device("cuda", 0)
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).to(device)
        synced = dist_utils.convert_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
                                              True, device).to(device)
        assert isinstance(synced[1], nn.SyncBatchNorm)
        synced.load_state_dict(reference.state_dict())
        images = torch.randn(16, 3, 12, 12, device=device)
        for model in (reference, synced):
            model(images).square().mean().backward()
        assert torch.allclose(reference(images), synced(images), atol=1e-5)
        assert torch.allclose(reference[0].weight.grad, synced[0].weight.grad, atol=1e-5)
        grads = [p.grad.clone() for p in synced.parameters()]
        dist_utils.average_gradients(list(synced.parameters()))  # an all-reduce over nccl, divided by 1
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, synced.parameters()))
        assert dist_utils.weights_in_sync([synced], device)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2 or shutil.which("torchrun") is None and
                    not Path(sys.executable).with_name("torchrun").exists(), reason="needs two GPUs and torchrun")
def test_two_gpus_train_with_nccl_and_sync_batchnorm(tmp_path):
    data = write_images(tmp_path / "imgs", 16, size=40)
    launcher = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(launcher) if launcher.exists() else "torchrun", "--standalone", "--nproc_per_node=2", "-m", "spotart",
         "train-ae", "--data", str(data), "--out", str(tmp_path / "run"), "--image-size", "32", "--batch-size", "4",
         "--steps", "2", "--set", "sync_batchnorm=true", "--set", "num_workers=0", "--set", "progress=false",
         "--set", "checkpoint_every=1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weights identical on all 2 ranks" in result.stderr
