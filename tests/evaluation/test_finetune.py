"""``spotart finetune``: STL-10 fold files, the frozen-conv5 linear variant per fold (mean ± std), and full
fine-tuning that learns."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from spotart.cli import main
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.finetune import FinetuneOptions, read_folds, resolve_folds, run_finetune

from .fakes import write_checkpoint

FAST = dict(image_size=32, workers=0, progress=False)


def _stl10_folds(root: Path, images_per_class: int = 16, classes: int = 3, per_fold: int = 4) -> Path:
    """torchvision's STL-10 layout: ROOT/stl10_binary/fold_indices.txt, ten lines of indices into the train split."""
    lines = []
    for fold in range(10):
        picks = [c * images_per_class + (fold + j) % images_per_class for c in range(classes) for j in range(per_fold)]
        lines.append(" ".join(map(str, picks)))
    path = root / "stl10_binary" / "fold_indices.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return root


def test_fold_file_in_stl10_layout_is_read(tmp_path):
    root = _stl10_folds(tmp_path / "stl10")
    folds = read_folds(root)
    assert len(folds) == 10 and all(len(f) == 12 for f in folds) and folds[0][:2] == [0, 1]
    assert read_folds(root / "stl10_binary" / "fold_indices.txt") == folds
    assert resolve_folds("auto", "stl10:train", str(root), size=48) == folds  # STL-10's own folds by default
    assert resolve_folds("auto", "/some/folder", str(root), size=48) is None
    assert resolve_folds("none", "stl10:train", str(root), size=48) is None


def test_bad_fold_files_are_clear_errors(tmp_path):
    root = _stl10_folds(tmp_path / "stl10")
    with pytest.raises(EvaluationError, match="fold 5 refers to image 40, but the training data has 40 images"):
        resolve_folds(str(root), "x", "", size=40)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(EvaluationError, match="line 2: expected space-separated image indices"):
        read_folds(bad)
    with pytest.raises(FileNotFoundError, match="fold file not found"):
        read_folds(tmp_path / "nowhere")


def test_linear_on_frozen_conv5_over_ten_folds(toy, tmp_path):
    train, val = toy
    folds = _stl10_folds(tmp_path / "stl10")
    report = run_finetune(str(train), str(val), tmp_path / "out", init="random",
                          options=FinetuneOptions(mode="linear", folds=str(folds), **FAST))
    saved = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert saved["mode"] == "linear" and len(saved["folds"]) == 10
    assert saved["top1_mean"] == pytest.approx(statistics.fmean(saved["folds"]), abs=0.01)
    assert saved["top1_std"] == pytest.approx(statistics.stdev(saved["folds"]), abs=0.01)
    assert saved["top1_mean"] >= 90.0 and report["top1_mean"] == saved["top1_mean"]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "out" / "features").iterdir()) == ["test", "train"]


def test_full_fine_tuning_learns_on_each_fold(toy, tmp_path):
    train, val = toy
    checkpoint = write_checkpoint(tmp_path / "spot.pt", "spot")
    options = FinetuneOptions(mode="full", folds=str(_stl10_folds(tmp_path / "stl10", per_fold=8)), max_folds=2,
                              epochs=6, batch_size=8, lr=1e-3, hidden=64, **FAST)
    report = run_finetune(str(train), str(val), tmp_path / "out", str(checkpoint), options=options)
    assert len(report["folds"]) == 2 and min(report["folds"]) >= 90.0  # chance is 33%


def test_finetune_cli_errors_are_one_line(toy, tmp_path, capsys):
    train, val = toy
    ae = write_checkpoint(tmp_path / "ae.pt", "autoencoder")
    common = ["finetune", "--train", str(train), "--test", str(val), "--out", str(tmp_path / "o"), "--workers", "0"]
    assert main([*common, "--checkpoint", str(ae), "--mode", "full"]) == 2
    assert "full fine-tuning trains the discriminator's conv1..conv5" in capsys.readouterr().err
    assert main([*common, "--init", "random", "--folds", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "fold file not found" in err and len(err.splitlines()) == 1
