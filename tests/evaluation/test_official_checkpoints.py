"""Checkpoints trained with the official architecture options are evaluated with them (the padding is not in the
weights; fc_1's BatchNorm without a scale changes the state dict)."""

from __future__ import annotations

import torch

import spotart
from spotart.evaluation.backbones import load_backbone
from spotart.inspection.checkpoint import discriminator_from
from spotart.inspection.export import export_backbone, read_backbone_info
from spotart.models import Discriminator
from spotart.train.checkpoints import load_checkpoint, save_checkpoint


def _official_checkpoint(path):
    torch.manual_seed(0)
    trained = Discriminator(32, init="official", padding="tf_same", fc1_bn_scale=False).eval()
    config = {"image_size": 32, "disc_padding": "tf_same", "fc1_bn_scale": False}
    save_checkpoint(path, {"stage": "spot", "format": 1, "step": 3, "config": config,
                           "discriminator": trained.state_dict()})
    return trained


def test_probe_inspection_and_export_rebuild_the_trained_padding(tmp_path):
    trained = _official_checkpoint(tmp_path / "spot.pt")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = trained.forward_features(images)["conv5"]
        backbone = load_backbone(tmp_path / "spot.pt")
        assert backbone.net.padding == "tf_same"
        assert torch.equal(backbone(images)["conv5"], expected)
        inspected = discriminator_from(load_checkpoint(tmp_path / "spot.pt"))
        assert inspected.trunk.padding == "tf_same" and torch.equal(inspected(images).class_logits,
                                                                     trained(images).class_logits)
    info = export_backbone(tmp_path / "spot.pt", tmp_path / "trunk.safetensors")
    assert info.padding == "tf_same" and read_backbone_info(tmp_path / "trunk.safetensors").padding == "tf_same"
    with torch.no_grad():
        assert torch.equal(spotart.load_backbone(tmp_path / "trunk.safetensors")(images), expected)
        # the same weights with the symmetric padding give other features: the padding had to travel
        symmetric = Discriminator(32).trunk.eval()
        symmetric.load_state_dict(trained.trunk.state_dict())
        assert not torch.allclose(symmetric(images), expected)
