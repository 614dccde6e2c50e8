"""One tiny stage-2 run (32 px, two steps of each stage, CPU) shared by every inspection test, and Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from spotart.config import build_config
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from ..helpers import write_images

# channels_last on purpose: the checkpoint then holds NHWC-strided weights, which export has to handle
TINY = ["num_workers=0", "progress=false", "log_every=1", "image_every=1", "checkpoint_every=2", "image_size=32",
        "batch_size=4", "steps=2", "precision=fp32", "channels_last=on"]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """``data`` (16 images in two class folders), ``ae`` and ``spot`` run directories."""
    root = tmp_path_factory.mktemp("inspection")
    torch.manual_seed(0)
    data = write_images(root / "data", 16, size=40)
    common = TINY + [f"data={data}"]
    ae_ckpt = train_autoencoder(build_config("train-ae", set_pairs=common), str(root / "ae"))
    train_spot(build_config("train-spot", set_pairs=common + [f"autoencoder={ae_ckpt}"]), str(root / "spot"))
    return {"data": data, "ae": root / "ae", "spot": root / "spot"}


@pytest.fixture(scope="session")
def spot_run(tiny_runs) -> Path:
    return tiny_runs["spot"]


@pytest.fixture(scope="session")
def spot_checkpoint(spot_run) -> Path:
    return spot_run / "checkpoints" / "latest.pt"


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when missing and we may (root); the reason when not."""
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium is not installed and the tests are not root on a Debian system (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return f"could not install chromium ({' '.join(command)}: {done.stderr.strip()[-300:]})"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    reason = _install_chromium()
    if reason:
        pytest.skip(reason)
    return shutil.which("chromium") or "/usr/bin/chromium"
