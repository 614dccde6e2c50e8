"""The VOC commands under torchrun: two CPU processes (gloo) train, split the test images and gather the scores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spotart.voc import devkit
from spotart.voc.classification import (
    ClassificationOptions,
    VOCClassificationSet,
    VOCClassifier,
    collate,
    evaluate,
    evaluation_transform,
)
from spotart.voc.engine import TransferRun, load_trunk

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_score_every_test_image_once(voc2007, tmp_path):
    out = tmp_path / "run"
    launcher = str(TORCHRUN if TORCHRUN.exists() else shutil.which("torchrun"))
    command = [launcher, "--standalone", "--nproc_per_node=2", "-m", "spotart", "voc-cls", "--voc-root",
               str(voc2007), "--out", str(out), "--init", "random", "--image-size", "64", "--hidden", "64",
               "--epochs", "1", "--batch-size", "8", "--test-crops", "1", "--workers", "0", "--no-progress",
               "--precision", "fp32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                      "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "voc_cls.json").read_text())
    assert result["test_images"] == 32  # 16 per process, gathered, none twice and none padded in

    # the saved weights, evaluated by one process, give the same scores as the two processes gathered
    options = ClassificationOptions(voc_root=str(voc2007), init="random", image_size=64, hidden=64, test_crops=1,
                                    workers=0, precision="fp32", progress=False)
    model = VOCClassifier(load_trunk(None, "random")[0], 64, 64)
    model.load_state_dict(torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["model"])
    folder = devkit.year_folder(voc2007, "2007")
    ids = devkit.read_split(folder, "test")
    labels = devkit.classification_labels(devkit.read_annotations(folder, ids))
    run = TransferRun("voc-cls", tmp_path / "single", options)
    loader = run.loader(VOCClassificationSet(folder, ids, labels, evaluation_transform(64, 1)), 8, shuffle=False,
                        collate=collate)
    single = evaluate(model, loader, labels, run)
    assert single["map_area"] == pytest.approx(result["map_area"], abs=1e-6)
    for name, values in result["per_class"].items():
        assert single["per_class"][name]["ap_11point"] == pytest.approx(values["ap_11point"], abs=1e-6)
