"""``spotart voc-cls``: it learns the toy task, ignores difficult labels, resumes, and the CLI maps its flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spotart.cli import build_parser, main
from spotart.train.checkpoints import CheckpointError
from spotart.voc import devkit
from spotart.voc.classification import ClassificationOptions, multilabel_loss, run_voc_classification
from spotart.voc.commands import _options


def quick_options(voc_root, **overrides) -> ClassificationOptions:
    values = dict(voc_root=str(voc_root), init="random", image_size=64, hidden=256, epochs=6, batch_size=16,
                  lr=0.01, test_crops=1, workers=0, progress=False)
    values.update(overrides)
    return ClassificationOptions(**values)


def test_fine_tuning_learns_the_toy_task_well_above_chance(voc2007, tmp_path):
    result = run_voc_classification(str(tmp_path / "run"), quick_options(voc2007))
    assert result["classes_evaluated"] == ["aeroplane", "bicycle", "bird"] and result["test_images"] == 32
    # chance: a random ranking has an expected AP equal to the fraction of positives
    folder = devkit.year_folder(voc2007, "2007")
    labels = devkit.classification_labels(devkit.read_annotations(folder, devkit.read_split(folder, "test")))
    chance = 100 * np.mean([(labels[:, c] == 1).sum() / (labels[:, c] != 0).sum() for c in range(3)])
    # measured: 73-80 mAP against a chance level of about 55 (random-init trunk, 6 epochs of 4 steps)
    assert result["map_area"] > chance + 10, (result["map_area"], chance)
    assert abs(result["map_11point"] - result["map_area"]) < 10
    saved = json.loads((tmp_path / "run" / "voc_cls.json").read_text())
    assert saved["map_area"] == pytest.approx(result["map_area"]) and set(saved["per_class"]) == {
        "aeroplane", "bicycle", "bird"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert any("test_map_area" in row for row in rows)  # the interim evaluations


def test_frozen_trunk_keeps_conv_weights(voc2007, tmp_path):
    from spotart.voc import classification

    seen = {}
    original = classification.VOCClassifier

    class Spy(original):
        def __init__(self, trunk, *args, **kwargs):
            seen["before"] = {k: v.clone() for k, v in trunk.state_dict().items()}
            super().__init__(trunk, *args, **kwargs)
            seen["trunk"] = trunk

    classification.VOCClassifier = Spy
    try:
        run_voc_classification(str(tmp_path / "run"), quick_options(voc2007, epochs=1, freeze_trunk=True))
    finally:
        classification.VOCClassifier = original
    after = seen["trunk"].state_dict()
    assert all(torch.equal(seen["before"][k], after[k].cpu()) for k in seen["before"])  # BN statistics included


def test_difficult_labels_do_not_count_in_the_loss():
    labels = torch.tensor([[1, 0, -1]])
    logits = torch.tensor([[2.0, 0.0, -2.0]])
    changed = logits.clone()
    changed[0, 1] = 50.0  # a confident score for the difficult-only class changes nothing
    assert multilabel_loss(logits, labels) == pytest.approx(float(multilabel_loss(changed, labels)))
    wrong = logits.clone()
    wrong[0, 0] = -2.0
    assert multilabel_loss(wrong, labels) > multilabel_loss(logits, labels)


def test_resume_continues_after_the_last_epoch(voc2007, tmp_path):
    out = str(tmp_path / "run")
    run_voc_classification(out, quick_options(voc2007, epochs=1, max_train=32, max_test=8))
    with pytest.raises(CheckpointError, match="--resume"):
        run_voc_classification(out, quick_options(voc2007, epochs=1, max_train=32, max_test=8))
    run_voc_classification(out, quick_options(voc2007, epochs=2, max_train=32, max_test=8), resume=True)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == sorted(epochs) and epochs[0] == 1 and epochs[-1] == 2
    payload = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    assert payload["stage"] == "voc-cls" and payload["epoch"] == 2


def test_cli_flags_map_onto_the_options():
    args = build_parser().parse_args(["voc-cls", "--out", "x", "--voc-root", "r", "--lr", "0.05", "--lr-steps",
                                      "0.5,0.8", "--freeze-trunk", "--test-crops", "1"])
    options = _options(ClassificationOptions, args)
    assert (options.lr, options.lr_steps, options.freeze_trunk, options.test_crops) == (0.05, (0.5, 0.8), True, 1)
    assert (options.image_size, options.epochs, options.year) == (227, 80, "2007")  # untouched: the protocol's


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path, capsys):
    assert main(["voc-cls", "--out", str(tmp_path / "run"), "--voc-root", str(tmp_path), "--init", "random"]) != 0
    err = capsys.readouterr().err
    assert "no PASCAL VOC 2007 found" in err and "Traceback" not in err


def test_autoencoder_checkpoint_is_refused(tmp_path):
    from spotart.config import build_config
    from spotart.evaluation.errors import EvaluationError
    from spotart.train.stage1 import train_autoencoder
    from tests.helpers import write_images

    data = write_images(tmp_path / "images", 8, size=40)
    cfg = build_config("train-ae", set_pairs=[f"data={data}", "image_size=32", "batch_size=4", "steps=1",
                                              "num_workers=0", "progress=false"])
    ckpt = train_autoencoder(cfg, str(tmp_path / "ae"))
    from spotart.voc.engine import load_trunk

    with pytest.raises(EvaluationError, match="needs a discriminator trunk"):
        load_trunk(str(ckpt))


def test_set_reaches_every_option_type_checked():
    from spotart.config import ConfigError
    from spotart.voc.detection import DetectionOptions

    args = build_parser().parse_args(["voc-det", "--out", "x", "--set", "hidden=256", "--set", "max_train=none",
                                      "--set", "anchor_sizes=32,64", "--set", "flip=false"])
    options = _options(DetectionOptions, args)
    assert (options.hidden, options.max_train, options.anchor_sizes, options.flip) == (256, None, (32.0, 64.0), False)
    with pytest.raises(ConfigError, match="'hidden' expects an integer"):
        _options(DetectionOptions, build_parser().parse_args(["voc-det", "--out", "x", "--set", "hidden=wide"]))
    with pytest.raises(ConfigError, match="unknown config key 'hiden'"):
        _options(DetectionOptions, build_parser().parse_args(["voc-det", "--out", "x", "--set", "hiden=2"]))
