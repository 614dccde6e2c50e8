"""``spotart spot``: probabilities from C's two heads, heat maps beside the inputs, bad inputs named and skipped."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from spotart.cli import main
from spotart.data import CenterCrop
from spotart.inspection.images import heat_overlay
from spotart.inspection.spotter import ArtifactSpotter


@pytest.fixture(scope="module")
def spotter(spot_checkpoint) -> ArtifactSpotter:
    return ArtifactSpotter.from_checkpoint(spot_checkpoint)


def _photo(path, size=(60, 40), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, size=(size[1], size[0], 3 if mode != "L" else 1), dtype=np.uint8)
    Image.fromarray(array.squeeze()).convert(mode).save(path)
    return path


def test_probabilities_come_from_the_class_and_mask_heads(spotter):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    verdicts = spotter.judge(images)
    with torch.no_grad():
        out = spotter.discriminator(images)
    for i, verdict in enumerate(verdicts):
        assert verdict.real_probability == pytest.approx(float(torch.softmax(out.class_logits, 1)[i, 1]), abs=1e-6)
        assert verdict.artifact_map.shape == (2, 2)  # 32 px: a 2x2 grid of cells
        expected = 1 - torch.sigmoid(out.mask_logits[i, 0]).numpy()
        np.testing.assert_allclose(verdict.artifact_map, expected, atol=1e-6)


def test_the_view_is_the_centre_square_at_the_checkpoint_size(spotter):
    picture = Image.fromarray(np.arange(60 * 40 * 3, dtype=np.uint8).reshape(40, 60, 3))
    square, tensor = spotter.view(picture)
    assert square.size == (40, 40) and tensor.shape == (3, 32, 32)
    assert np.array_equal(np.asarray(square), np.asarray(picture)[:, 10:50])
    assert torch.equal(tensor, CenterCrop(32, fraction=1.0)(picture))


def test_the_overlay_tints_only_cells_with_artifacts():
    picture = Image.new("RGB", (64, 64), (128, 128, 128))
    cells = np.array([[0.0, 0.0], [0.0, 1.0]])  # artifacts in the bottom-right cell only
    out = np.asarray(heat_overlay(picture, cells)).astype(int)
    assert out.shape == (64, 64, 3)
    assert (out[:32] == 128).all() and (out[32:, :32] == 128).all()
    assert np.abs(out[32:, 32:] - 128).sum(axis=-1).min() > 30


def test_spot_command_prints_verdicts_writes_heat_maps_and_names_bad_inputs(tmp_path, spot_run, spotter, capsys):
    wide = _photo(tmp_path / "wide.png")
    grey = _photo(tmp_path / "grey.jpg", size=(48, 48), mode="L", seed=1)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    code = main(["spot", str(wide), str(text), str(missing), str(grey), "--checkpoint", str(spot_run)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [
        f"spotart spot: {text}: not an image (no image format recognised)",
        f"spotart spot: {missing}: no such file",
        "spotart spot: error: 2 of 4 inputs could not be judged (named above)",
    ]
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(wide), str(grey)]
    for source, line in zip((wide, grey), lines):
        heat = tmp_path / f"{source.stem}_artifacts.png"
        assert line.endswith(f"-> {heat}")
        with Image.open(heat) as picture:
            assert picture.size == (256, 256) and picture.mode == "RGB"
        printed = float(re.search(r"real (\d\.\d{3})", line).group(1))
        with Image.open(source) as picture:
            expected = spotter.judge(spotter.view(picture.convert("RGB"))[1][None])[0].real_probability
        assert printed == pytest.approx(expected, abs=6e-4)
    assert not (tmp_path / "notes_artifacts.png").exists()


def test_out_dir_collects_the_heat_maps(tmp_path, spot_checkpoint, capsys):
    (tmp_path / "in").mkdir()
    photo = _photo(tmp_path / "in" / "cat.png")
    assert main(["spot", str(photo), "--checkpoint", str(spot_checkpoint), "--out-dir", str(tmp_path / "maps")]) == 0
    assert (tmp_path / "maps" / "cat_artifacts.png").is_file()
    assert not (tmp_path / "in" / "cat_artifacts.png").exists()
    assert capsys.readouterr().err == ""


def test_a_wrong_checkpoint_is_one_line(tmp_path, tiny_runs, capsys):
    photo = _photo(tmp_path / "a.png")
    assert main(["spot", str(photo), "--checkpoint", str(tiny_runs["ae"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage-1 (train-ae) checkpoint" in err and "Traceback" not in err
