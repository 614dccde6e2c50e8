"""``spotart demo``: C scored on held-out images beside its constant guesses, and a final line that says so."""

from __future__ import annotations

import json

import pytest
import torch

from spotart.cli import main
from spotart.demo import HELD_OUT, HeadScores, final_line, run_demo, score_heads
from spotart.inspection.checkpoint import discriminator_from
from spotart.inspection.panels import artifact_generator, seeded
from spotart.train.checkpoints import load_checkpoint
from spotart.train.stage2 import autoencoder_from_payload

from ..helpers import write_images


def test_the_scores_are_the_heads_accuracies_on_reconstructions_and_repaired_images(spot_checkpoint, tmp_path):
    folder = write_images(tmp_path / "held", 3, size=32, classes=1)
    scores = score_heads(spot_checkpoint, folder / "class_0", seeds=2)
    # the same numbers computed here, step by step
    payload = load_checkpoint(spot_checkpoint)
    generator = artifact_generator(autoencoder_from_payload(payload, "ckpt", 32), payload["repair"], "masked",
                                   payload["config"]["drop_rate"])
    disc = discriminator_from(payload)
    from spotart.data import CenterCrop, FolderSource

    source = FolderSource(folder / "class_0")
    images = torch.stack([CenterCrop(32)(source.load(i)[0]) for i in range(3)])
    right, cells, kept = [], [], []
    with torch.no_grad():
        for seed in (1000, 1001):
            batch = generator(images, seeded(seed))
            real, fake = disc(batch.real), disc(batch.fake)
            right += (real.class_logits.argmax(1) == 1).tolist() + (fake.class_logits.argmax(1) == 0).tolist()
            cells += ((fake.mask_logits > 0).float() == batch.keep_mask).flatten().tolist()
            kept += batch.keep_mask.flatten().tolist()
    assert scores.images == 3
    assert scores.real_fake_accuracy == pytest.approx(sum(right) / len(right))
    assert scores.mask_accuracy == pytest.approx(sum(cells) / len(cells))
    kept_fraction = sum(kept) / len(kept)
    assert scores.mask_constant_guess == pytest.approx(max(kept_fraction, 1 - kept_fraction))


@pytest.mark.parametrize("scores,verdict", [(HeadScores(15, 0.86, 0.88, 0.72), "above both"),
                                            (HeadScores(15, 0.86, 0.60, 0.72), "NOT above both"),
                                            (HeadScores(15, 0.50, 0.88, 0.72), "NOT above both")])
def test_the_final_line_gives_each_number_beside_its_guess_and_says_what_it_means(scores, verdict):
    line = final_line(scores)
    assert f"15 views of {len(HELD_OUT)} photographs held out from training" in line
    assert f"right {scores.real_fake_accuracy:.2f} (a constant guess: 0.50)" in line
    assert f"right {scores.mask_accuracy:.2f} (the better constant guess: {scores.mask_constant_guess:.2f})" in line
    assert f": {verdict}." in line and "mark the dropped cells rather than hide them" in line


def test_a_finished_demo_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "spot" / "checkpoints").mkdir(parents=True)
    (tmp_path / "spot" / "checkpoints" / "latest.pt").write_bytes(b"x")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "already holds a finished demo" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_demo_trains_scores_and_writes_the_report(tmp_path, capsys):
    summary = run_demo(str(tmp_path / "demo"), minutes=0.1)  # 25 + 20 steps
    out = capsys.readouterr().out
    assert f"report: {summary['report']}" in out and (tmp_path / "demo" / "spot" / "report.html").is_file()
    assert out.strip().splitlines()[-1].strip() == final_line(HeadScores(**{
        k: v for k, v in summary["held_out"].items() if k != "beats_both"}))
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["held_out"] == summary["held_out"]
    assert not {path.stem.rsplit("_", 1)[0] for path in (tmp_path / "demo" / "photos").glob("*.png")} & set(HELD_OUT)
