"""probe, export, report and spot read every kind of stage-2 checkpoint: latest.pt, a networks-only periodic
snapshot (its autoencoder in autoencoder.pt beside it), the final snapshot (a hard link of latest.pt), and a
format-1 checkpoint with everything inline."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spotart.cli import main
from spotart.config import build_config
from spotart.evaluation.backbones import fingerprint, load_backbone
from spotart.inspection.export import load_backbone as load_exported
from spotart.models import Discriminator
from spotart.train.checkpoints import save_checkpoint
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from ..helpers import write_images
from .conftest import TINY

KINDS = ("latest", "periodic", "final", "format1")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    """A 3-step stage-2 run with a snapshot every 2 steps: step 2 networks-only, step 3 the final one."""
    root = tmp_path_factory.mktemp("snapshots")
    data = write_images(root / "data", 16, size=40)
    common = [pair for pair in TINY if not pair.startswith("steps=")] + [f"data={data}"]
    ae = train_autoencoder(build_config("train-ae", set_pairs=common + ["steps=2"]), str(root / "ae"))
    train_spot(build_config("train-spot", set_pairs=common + ["steps=3", f"autoencoder={ae}"]), str(root / "spot"))
    folder = root / "spot" / "checkpoints"
    old = torch.load(folder / "latest.pt", weights_only=True)
    old["format"] = 1  # what spotart wrote before format 2: the same keys, everything inline
    (root / "old").mkdir()
    save_checkpoint(root / "old" / "latest.pt", old)
    return {"run": root / "spot", "latest": folder / "latest.pt", "periodic": folder / "step_0000002.pt",
            "final": folder / "step_0000003.pt", "format1": root / "old" / "latest.pt"}


def _trained_discriminator(path: Path) -> Discriminator:
    """The discriminator as written in the file, read without spotart's loader."""
    disc = Discriminator(32)
    disc.load_state_dict(torch.load(path, weights_only=True)["discriminator"])
    return disc


def test_the_run_wrote_each_kind(snapshots):
    folder = snapshots["latest"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["autoencoder.pt", "latest.pt", "step_0000002.pt",
                                                        "step_0000003.pt"]
    assert os.path.samefile(snapshots["final"], snapshots["latest"])
    raw = torch.load(snapshots["periodic"], weights_only=True)
    assert "opt_c" not in raw and "autoencoder" not in raw and raw["step"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_probe_loads_the_trunk_of_each_kind(snapshots, kind):
    backbone = load_backbone(snapshots[kind])
    assert backbone.kind == "spot" and fingerprint(backbone.net) == fingerprint(_trained_discriminator(
        snapshots[kind]).trunk)


@pytest.mark.parametrize("kind", KINDS)
def test_export_writes_the_trunk_of_each_kind(snapshots, kind, tmp_path, capsys):
    out = tmp_path / "backbone.safetensors"
    assert main(["export", str(snapshots[kind]), "--out", str(out)]) == 0
    step = 2 if kind == "periodic" else 3
    assert f"of step {step}" in capsys.readouterr().out
    assert fingerprint(load_exported(out)) == fingerprint(_trained_discriminator(snapshots[kind]).trunk)


@pytest.mark.parametrize("kind", KINDS)
def test_spot_judges_with_each_kind(snapshots, kind, tmp_path, capsys):
    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(picture)
    assert main(["spot", str(picture), "--checkpoint", str(snapshots[kind]), "--out-dir", str(tmp_path)]) == 0
    printed = float(re.search(r"real ([0-9.]+)", capsys.readouterr().out).group(1))
    assert 0.0 <= printed <= 1.0 and (tmp_path / "picture_artifacts.png").is_file()


@pytest.mark.parametrize("kind", ("periodic", "format1"))  # latest (and final, the same file): test_report.py
def test_report_draws_each_kind(snapshots, kind, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(snapshots["run"]), "--checkpoint", str(snapshots[kind]), "--out", str(out),
                 "--images", "2"]) == 0
    html = out.read_text()
    step = 2 if kind == "periodic" else 3
    assert f"Stage-2 run at step {step}" in html and str(snapshots[kind]) in html


def test_a_periodic_snapshot_copied_alone_still_exports_and_says_why_it_cannot_report(snapshots, tmp_path, capsys):
    alone = tmp_path / "step_0000002.pt"
    alone.write_bytes(snapshots["periodic"].read_bytes())
    assert main(["export", str(alone), "--out", str(tmp_path / "b.safetensors")]) == 0
    capsys.readouterr()
    assert main(["report", str(snapshots["run"]), "--checkpoint", str(alone), "--out", str(tmp_path / "r.html"),
                 "--images", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "autoencoder.pt, which is missing" in err[0]
