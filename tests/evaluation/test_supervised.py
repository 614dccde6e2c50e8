"""``spotart train-supervised``: a checkpoint that probe reads like a stage-2 one, resumable, labels required."""

from __future__ import annotations

import json

import pytest

from spotart.cli import main
from spotart.evaluation.backbones import load_backbone
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.supervised import build_supervised_config, train_supervised
from spotart.models import LAYERS
from spotart.train.checkpoints import load_checkpoint

from ..helpers import write_images

FAST = ["num_workers=0", "progress=false", "log_every=1", "checkpoint_every=2", "image_size=32", "batch_size=8"]


def test_checkpoint_is_read_like_a_stage2_one_and_resumes(toy, tmp_path):
    train, _ = toy
    out = tmp_path / "sup"
    train_supervised(build_supervised_config(FAST + [f"data={train}", "steps=2", "hidden=32"]), str(out))
    saved = load_checkpoint(out / "checkpoints" / "latest.pt", expect_stage="supervised")
    assert saved["classes"] == ["class_0", "class_1", "class_2"] and saved["config"]["image_size"] == 32
    assert saved["classifier"]["5.weight"].shape == (3, 32)
    backbone = load_backbone(out / "checkpoints" / "latest.pt")
    assert (backbone.kind, backbone.layers) == ("supervised", LAYERS)

    train_supervised(build_supervised_config(FAST + [f"data={train}", "steps=4", "hidden=32"]), str(out), resume=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(0.0 <= r["acc"] <= 1.0 for r in rows)
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["step"] == 4


def test_supervised_needs_labels_and_valid_settings(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    write_images(tmp_path / "tmp", 2)
    for i, image in enumerate((tmp_path / "tmp").rglob("*.png")):
        image.rename(flat / f"{i}.png")
    with pytest.raises(EvaluationError, match="has no class folders"):
        train_supervised(build_supervised_config(FAST + [f"data={flat}", "steps=1"]), str(tmp_path / "o"))
    assert main(["train-supervised", "--data", str(flat), "--out", str(tmp_path / "o"), "--image-size", "40"]) == 2
    assert "image size 40 is not supported" in capsys.readouterr().err
