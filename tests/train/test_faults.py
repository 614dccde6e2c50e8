"""Faults: a run killed with SIGKILL resumes to the same weights; non-finite losses are caught at once."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from spotart.config import AEConfig
from spotart.models import AutoEncoder
from spotart.train.checkpoints import load_checkpoint
from spotart.train.device import Runtime
from spotart.train.nonfinite import NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.stage1 import autoencoder_step

from ..helpers import write_images


def _cmd(data, out, *extra):
    return [sys.executable, "-m", "spotart", "train-ae", "--data", str(data), "--out", str(out), "--image-size", "32",
            "--batch-size", "4", "--steps", "8", "--set", "precision=fp32", "--set", "num_workers=0",
            "--set", "progress=false", "--set", "log_every=1", "--set", "checkpoint_every=2",
            "--set", "deterministic=true", *extra]


def _last_logged_step(out) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    data = write_images(tmp_path / "imgs", 16, size=40)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(_cmd(data, tmp_path / "whole"), capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr

    proc = subprocess.Popen(_cmd(data, tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + 240
    while _last_logged_step(tmp_path / "killed") < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")["step"]
    assert killed_at < 8, "the run finished before it could be killed"
    resumed = subprocess.run(_cmd(data, tmp_path / "killed", "--resume"), capture_output=True, text=True, env=env,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and f"at step {killed_at}" in resumed.stderr
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # rows after the checkpoint were dropped and written again, once


def test_non_finite_loss_skips_the_update_and_says_so(caplog):
    model = AutoEncoder().train()
    cfg = AEConfig(precision="fp32")
    optimizer = make_adam(model, cfg)
    runtime = Runtime(torch.device("cpu"), None, False)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    guard = NonFiniteGuard(patience=3)
    images = torch.full((2, 3, 32, 32), float("nan"))
    with caplog.at_level(logging.WARNING, logger="spotart"):
        autoencoder_step(model, images, optimizer, runtime, 30.0, guard, step=7)
    assert "step 7: non-finite loss, mse; the update is skipped" in caplog.text
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert guard.total == 1
    autoencoder_step(model, images, optimizer, runtime, 30.0, guard, step=8)
    with pytest.raises(FloatingPointError, match="3 steps in a row had a non-finite loss"):
        autoencoder_step(model, images, optimizer, runtime, 30.0, guard, step=9)
