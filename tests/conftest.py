"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from .helpers import write_images


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images", 16)
