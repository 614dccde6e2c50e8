"""best_knn.pt: the networks at the step whose best monitored layer scored highest, kept through resume."""

from __future__ import annotations

import json

import pytest
import torch

from spotart.config import build_config
from spotart.train.best_knn import BestKnn, best_layer
from spotart.train.checkpoints import CheckpointManager, load_checkpoint
from spotart.train.rundir import RunDir
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from ..helpers import write_images
from .test_checkpoints import _payload


def _manager(tmp_path) -> CheckpointManager:
    return CheckpointManager(RunDir(tmp_path / "run", writer_enabled=False), keep=3)


def _offer(best: BestKnn, step: int, **knn: float) -> bool:
    return best.offer(step, {"step": step, **{f"knn_{layer}": value for layer, value in knn.items()}},
                      lambda: _payload(step))


def test_best_layer_reads_only_the_knn_metrics():
    assert best_layer({"step": 4, "c_loss": 90.0, "knn_conv2": 41.0, "knn_conv5": 43.5}) == ("conv5", 43.5)
    assert best_layer({"step": 4, "c_loss": 0.5}) is None


def test_the_snapshot_follows_the_best_layer_and_ties_keep_the_earlier_step(tmp_path):
    manager = _manager(tmp_path)
    best = BestKnn(manager, start_step=0)
    assert _offer(best, 0, conv2=40.0, conv5=35.0)  # the random start is a candidate too
    assert not _offer(best, 2, conv2=38.0, conv5=36.0)  # below 40 at every layer
    assert _offer(best, 4, conv2=39.0, conv5=41.0)  # conv5 beats conv2's 40
    assert not _offer(best, 6, conv2=41.0, conv5=30.0)  # a tie: the earlier step stays
    record = json.loads(manager.best_knn_record.read_text())
    assert record == {"step": 4, "layer": "conv5", "top1": 41.0, "knn": {"knn_conv2": 39.0, "knn_conv5": 41.0}}
    snapshot = load_checkpoint(manager.best_knn)
    assert snapshot["step"] == 4 and snapshot["resumable"] is False and "opt_c" not in snapshot
    assert torch.equal(snapshot["discriminator"]["weight"], torch.full((2, 3), 4.0))  # step 4's networks
    assert torch.equal(snapshot["autoencoder"]["weight"], torch.arange(6.0).view(2, 3))  # shared part put back


def test_a_resumed_run_keeps_the_best_so_far_and_drops_one_from_past_its_step(tmp_path):
    manager = _manager(tmp_path)
    _offer(BestKnn(manager, start_step=0), 4, conv2=50.0)
    kept = BestKnn(manager, start_step=6)  # resumed after the best step: the record stands
    assert kept.top1 == 50.0 and not _offer(kept, 8, conv2=49.0)
    assert json.loads(manager.best_knn_record.read_text())["step"] == 4
    dropped = BestKnn(manager, start_step=2)  # resumed before it: that step is trained and measured again
    assert dropped.top1 == float("-inf") and not manager.best_knn.exists() and not manager.best_knn_record.exists()
    assert _offer(dropped, 4, conv2=30.0)


def test_an_unreadable_record_is_said_and_started_anew(tmp_path, caplog):
    manager = _manager(tmp_path)
    manager.best_knn_record.write_text("{not json")
    best = BestKnn(manager, start_step=10)
    assert best.top1 == float("-inf") and "cannot be read" in caplog.text
    assert _offer(best, 12, conv3=20.0)


@pytest.mark.parametrize("keep", [True, False])
def test_a_monitored_stage_2_run_keeps_the_networks_of_its_best_knn_step(tmp_path, keep):
    train = write_images(tmp_path / "train", 16, size=40, classes=2)
    val = write_images(tmp_path / "val", 8, size=40, classes=2, seed=1)
    fast = ["num_workers=0", "progress=false", "log_every=1", "image_every=100", "checkpoint_every=1",
            "keep_checkpoints=0", f"data={train}", "image_size=32", "batch_size=4", "precision=fp32"]
    ae = train_autoencoder(build_config("train-ae", set_pairs=fast + ["steps=1"]), str(tmp_path / "ae"))
    cfg = build_config("train-spot", set_pairs=fast + ["steps=3", f"autoencoder={ae}", f"knn_val={val}",
                                                       f"keep_best_knn={str(keep).lower()}"])
    scripted = {0: 30.0, 1: 50.0, 2: 40.0, 3: 45.0}  # step 1 is best

    def monitor(discriminator, step):
        return {"knn_conv2": scripted[step], "knn_conv5": scripted[step] - 5.0}

    train_spot(cfg, str(tmp_path / "spot"), monitor=monitor)
    checkpoints = tmp_path / "spot" / "checkpoints"
    if not keep:
        assert not (checkpoints / "best_knn.pt").exists() and not (checkpoints / "best_knn.json").exists()
        return
    assert json.loads((checkpoints / "best_knn.json").read_text())["step"] == 1
    best, snapshot = load_checkpoint(checkpoints / "best_knn.pt"), load_checkpoint(checkpoints / "step_0000001.pt")
    assert best["step"] == 1
    assert all(torch.equal(value, snapshot["discriminator"][name]) for name, value in best["discriminator"].items())
    final = load_checkpoint(checkpoints / "latest.pt")
    assert any(not torch.equal(value, final["discriminator"][name]) for name, value in best["discriminator"].items())
