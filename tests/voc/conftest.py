"""Fixtures of the VOC tests: generated VOCdevkit folders, and one thread (tiny tensors on a busy 2-core machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotart.voc.toy import write_toy_voc

from ..helpers import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def voc2007(tmp_path_factory) -> Path:
    """The root of a toy VOC2007 (trainval 64, test 32 images, 64..96 px): pass it as ``voc_root``."""
    root = tmp_path_factory.mktemp("voc2007")
    write_toy_voc(root, "2007", {"trainval": 64, "test": 32}, size=(64, 96), seed=0)
    return root
