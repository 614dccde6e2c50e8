"""The kNN monitor: high accuracy on the toy set, and no side effects on the training run it watches."""

from __future__ import annotations

import pytest
import torch

from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.knn import KnnMonitor
from spotart.models import Discriminator

from ..helpers import write_images


def test_knn_accuracy_is_high_on_the_toy_set_and_the_run_is_untouched(toy):
    train, val = toy
    monitor = KnnMonitor(str(train), str(val), image_size=32, every=5, k=5)
    disc = Discriminator(32).train()
    state = {k: v.clone() for k, v in disc.state_dict().items()}
    rng = torch.get_rng_state()
    assert monitor(disc, 3) == {}  # not due
    metrics = monitor(disc, 10)
    assert set(metrics) == {"knn_top1"} and metrics["knn_top1"] >= 90.0
    assert disc.training and all(m.training for m in disc.modules())
    assert all(torch.equal(v, state[k]) for k, v in disc.state_dict().items())  # BatchNorm statistics too
    assert torch.equal(torch.get_rng_state(), rng)  # a monitored run stays identical to an unmonitored one


def test_knn_subsets_and_bad_folders(toy, tmp_path):
    train, val = toy
    monitor = KnnMonitor(str(train), str(val), image_size=32, every=1, max_train=12, max_val=6)
    assert len(monitor.train_labels) == 12 and len(monitor.val_labels) == 6
    assert monitor.train_images.dtype == torch.uint8
    with pytest.raises(EvaluationError, match="different classes"):
        KnnMonitor(str(train), str(write_images(tmp_path / "two", 4, classes=2)), image_size=32, every=1)
    with pytest.raises(ValueError, match="must be positive"):
        KnnMonitor(str(train), str(val), image_size=32, every=0)
