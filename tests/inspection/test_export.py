"""``spotart export`` and ``spotart.load_backbone``: the trunk leaves training unchanged."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import spotart
from spotart.cli import main
from spotart.inspection.export import BackboneError, export_backbone, read_backbone_info
from spotart.models import LAYERS, Discriminator, Trunk
from spotart.train.checkpoints import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, spot_run):
    path = tmp_path_factory.mktemp("export") / "backbone.safetensors"
    assert main(["export", str(spot_run), "--out", str(path)]) == 0  # a run directory stands for its latest.pt
    return path


def test_exported_trunk_gives_the_features_of_the_trained_discriminator(backbone, spot_checkpoint):
    payload = load_checkpoint(spot_checkpoint, expect_stage="spot")
    trained = Discriminator(32)
    trained.load_state_dict(payload["discriminator"])
    trained.eval()
    trunk = spotart.load_backbone(backbone)
    assert isinstance(trunk, Trunk) and not trunk.training
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected, got = trained.forward_features(images), trunk.forward_features(images)
    assert list(got) == list(LAYERS)
    for layer in LAYERS:
        assert torch.equal(got[layer], expected[layer]), layer
    assert got["conv5"].shape == (3, 256, 2, 2)
    # the BatchNorm statistics learned in training travel too (fresh ones would be 0 and 1)
    assert not torch.equal(trunk.bn5.norm.running_mean, torch.zeros(256))
    assert torch.equal(trunk.bn5.norm.running_var, payload["discriminator"]["trunk.bn5.norm.running_var"])


def test_the_file_holds_the_trunk_only_with_metadata(backbone, spot_checkpoint):
    tensors = load_file(str(backbone))
    assert set(tensors) == set(Trunk().state_dict())  # no heads, no optimiser state, no autoencoder
    info = read_backbone_info(backbone)
    assert (info.image_size, info.layers, info.step) == (32, LAYERS, 2)
    assert info.source_checkpoint == str(spot_checkpoint.resolve())


def test_a_channels_last_checkpoint_exports(tmp_path, spot_checkpoint):
    # the tiny run trains with channels_last=on, so its conv weights are NHWC-strided
    payload = load_checkpoint(spot_checkpoint)
    assert not payload["discriminator"]["trunk.conv2.weight"].is_contiguous()
    info = export_backbone(spot_checkpoint, tmp_path / "sub" / "b.safetensors")
    assert info.step == 2 and (tmp_path / "sub" / "b.safetensors").is_file()


def test_files_that_are_not_backbones_are_refused_clearly(tmp_path):
    with pytest.raises(BackboneError, match="backbone file not found"):
        spotart.load_backbone(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(BackboneError, match="not a safetensors file"):
        spotart.load_backbone(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(BackboneError, match="not a spotart backbone"):
        spotart.load_backbone(foreign)


def test_exporting_a_stage1_checkpoint_is_one_clear_line(tmp_path, tiny_runs, capsys):
    ae_ckpt = tiny_runs["ae"] / "checkpoints" / "latest.pt"
    with pytest.raises(CheckpointError, match="stage-1"):
        export_backbone(ae_ckpt, tmp_path / "b.safetensors")
    assert main(["export", str(ae_ckpt), "--out", str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spotart export: error:")
    assert "a train-spot, train-supervised or train-rotnet checkpoint is needed" in err
    assert "\n" not in err and not (tmp_path / "b.safetensors").exists()
