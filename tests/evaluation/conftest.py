"""Fixtures of the evaluation tests: a separable toy set, and one thread (the tests' tensors are tiny, and on a
busy 2-core machine waiting for a second thread costs more than it gains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotart.evaluation.toydata import write_toy_dataset

from ..helpers import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> tuple[Path, Path]:
    """3 colour classes: 16 training and 8 evaluation images each, 40 px (read at 32 px)."""
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), train_per_class=16, val_per_class=8)
