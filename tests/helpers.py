"""Helpers shared by the tests: tiny generated image folders and the real data in ../shared/data."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IMAGENETTE_TRAIN = SHARED_DATA / "imagenette-96" / "train"
IMAGENETTE_VAL = SHARED_DATA / "imagenette-96" / "val"
CIFAR_TRAIN = SHARED_DATA / "cifar10" / "train"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the scripts are not a package), registered in ``sys.modules``:
    dataclasses look their module up there."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """:func:`load_benchmark` for the length of a block (a module-scoped fixture), then out of ``sys.modules``."""
    try:
        yield load_benchmark(name)
    finally:
        sys.modules.pop(name, None)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op threads: the tests' tensors are tiny, and on a busy 2-core machine waiting
    for a second thread costs more than it gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def write_images(folder: Path, count: int, size: int = 48, classes: int = 2, seed: int = 0) -> Path:
    """Smooth random colour images in class folders (``class_k/img_i.png``)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % classes
        base = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.BILINEAR)
        out = folder / f"class_{label}"
        out.mkdir(parents=True, exist_ok=True)
        img.save(out / f"img_{i:03d}.png")
    return folder


def real_data(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real data not present at {path}")
    return path


def decoder_upsamplings(step) -> set[str]:
    """The upsampling of every decoder stage inside the networks a step closure holds (``bench.build_step``, the
    one-step benchmark scripts): a module, or stage 2's models with their ``generator``."""
    from spotart.models.autoencoder import DecoderStage

    found = set()
    for cell in step.__closure__ or ():
        value = cell.cell_contents
        networks = [value] if isinstance(value, torch.nn.Module) else [getattr(value, "generator", None)]
        for network in filter(None, networks):
            found |= {module.upsampling for module in network.modules() if isinstance(module, DecoderStage)}
    return found
