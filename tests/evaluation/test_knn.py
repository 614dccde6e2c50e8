"""The kNN monitor: high accuracy on the toy set, no side effects on the run it watches, step 0 in the log."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from spotart.config import build_config
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.knn import KnnMonitor, monitor_from_config
from spotart.models import Discriminator
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from ..helpers import write_images


def test_knn_accuracy_is_high_on_the_toy_set_and_the_run_is_untouched(toy):
    train, val = toy
    monitor = KnnMonitor(str(train), str(val), image_size=32, every=5, k=5, layers=("conv2", "conv5"))
    disc = Discriminator(32).train()
    state = {k: v.clone() for k, v in disc.state_dict().items()}
    rng = torch.get_rng_state()
    assert monitor(disc, 3) == {}  # not due
    metrics = monitor(disc, 10)
    assert set(metrics) == {"knn_conv2", "knn_conv5"} and min(metrics.values()) >= 90.0
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
    with pytest.raises(ValueError, match="layers must be some of conv1, conv2, conv3, conv4, conv5, not fc6"):
        KnnMonitor(str(train), str(val), image_size=32, every=1, layers=("conv5", "fc6"))


def test_a_monitored_stage_2_run_logs_its_starting_network_at_step_0(toy, tmp_path):
    train, val = toy
    fast = ["num_workers=0", "progress=false", "log_every=1", "image_every=100", "checkpoint_every=100",
            f"data={train}", "image_size=32", "batch_size=4", "precision=fp32"]
    ae = train_autoencoder(build_config("train-ae", set_pairs=fast + ["steps=1"]), str(tmp_path / "ae"))
    cfg = build_config("train-spot", set_pairs=fast + ["steps=2", f"autoencoder={ae}", f"knn_val={val}",
                                                       "knn_every=2", "knn_max_train=24"])
    train_spot(cfg, str(tmp_path / "spot"), monitor=monitor_from_config(cfg))
    rows = [json.loads(line) for line in (tmp_path / "spot" / "metrics.jsonl").read_text().splitlines()]
    knn_rows = [row for row in rows if "knn_conv5" in row]
    assert [row["step"] for row in knn_rows] == [0, 2]  # the start, then every knn_every steps
    for row in knn_rows:
        assert set(k for k in row if k.startswith("knn_")) == {"knn_conv2", "knn_conv3", "knn_conv5"}
        assert all(0.0 <= row[k] <= 100.0 for k in ("knn_conv2", "knn_conv3", "knn_conv5"))
    assert rows[0]["step"] == 0 and "c_loss" not in rows[0]  # the step-0 row precedes any training row


def test_bad_monitor_keys_are_config_errors():
    from spotart.config import ConfigError

    with pytest.raises(ConfigError, match="knn_layers must be some of conv1..conv5, got pool5"):
        build_config("train-spot", set_pairs=["knn_layers=conv2,pool5"])


def test_training_code_does_not_import_evaluation():
    """train/ sits below evaluation/: the kNN monitor is handed to the loop from above, never imported by it."""
    train_package = Path(__import__("spotart.train", fromlist=["x"]).__file__).parent
    offenders = []
    for path in sorted(train_package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "evaluation" in node.module:
                offenders.append(f"{path.name}: from {'.' * node.level}{node.module}")
    assert offenders == []
