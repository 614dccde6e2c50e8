"""torchrun with two CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import write_images

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train_ae(cmd_prefix: list[str], data: Path, out: Path, batch: int) -> subprocess.CompletedProcess:
    args = ["train-ae", "--data", str(data), "--out", str(out), "--image-size", "32", "--batch-size", str(batch),
            "--steps", "2", "--set", "precision=fp32", "--set", "num_workers=0", "--set", "progress=false",
            "--set", "log_every=1", "--set", "checkpoint_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd_prefix + args, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    data = write_images(tmp_path / "imgs", 16, size=40)
    single = _train_ae([sys.executable, "-m", "spotart"], data, tmp_path / "single", batch=8)
    assert single.returncode == 0, single.stderr
    launcher = str(TORCHRUN if TORCHRUN.exists() else shutil.which("torchrun"))
    double = _train_ae([launcher, "--standalone", "--nproc_per_node=2", "-m", "spotart"], data,
                       tmp_path / "double", batch=4)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = _rows(tmp_path / "single"), _rows(tmp_path / "double")
    assert [r["step"] for r in two] == [1, 2]  # rank 0 alone writes, once per step
    # Same images and the same starting weights; only BatchNorm statistics differ (per rank of 4 vs over 8),
    # so the first losses agree to within a few percent.
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=0.05)
    assert "weights identical on all 2 ranks" in double.stderr


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_a_time_budget_stops_every_rank_at_the_same_step(tmp_path):
    """RotNet under torchrun with max_seconds: the ranks agree on when the budget is spent (or they would hang)."""
    data = write_images(tmp_path / "imgs", 16, size=40)
    launcher = str(TORCHRUN if TORCHRUN.exists() else shutil.which("torchrun"))
    args = ["train-rotnet", "--data", str(data), "--out", str(tmp_path / "run"), "--image-size", "32",
            "--batch-size", "2", "--steps", "100000", "--set", "max_seconds=3", "--set", "rotnet_hidden=32",
            "--set", "precision=fp32", "--set", "num_workers=0", "--set", "progress=false", "--set", "log_every=5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([launcher, "--standalone", "--nproc_per_node=2", "-m", "spotart", *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(tmp_path / "run")
    assert rows[-1]["wall_s"] >= 3 and rows[-1]["step"] < 100000
    assert "weights identical on all 2 ranks" in done.stderr and "time budget of 3 s spent" in done.stderr
