"""``spotart probe``: accuracy on a separable toy set, the ~9k pooling, the feature cache, the frozen-trunk proof,
every checkpoint kind, and one clear line for bad input."""

from __future__ import annotations

import json

import pytest
import torch

from spotart.cli import main
from spotart.evaluation import features as features_module
from spotart.evaluation import probe as probe_module
from spotart.evaluation.backbones import ENCODER_LAYERS, check_unchanged, fingerprint, load_backbone
from spotart.evaluation.errors import EvaluationError, TrunkChangedError
from spotart.evaluation.features import layer_shapes
from spotart.evaluation.probe import ProbeOptions, run_probe
from spotart.models import LAYERS
from spotart.train.checkpoints import CheckpointError

from ..helpers import write_images
from .fakes import write_checkpoint

FAST = dict(image_size=32, workers=0, progress=False)


def test_probe_reaches_near_100_percent_on_a_separable_toy_set(toy, tmp_path):
    train, val = toy
    report = run_probe(str(train), str(val), tmp_path / "probe", init="random", options=ProbeOptions(**FAST))
    saved = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert saved == report
    for layer in LAYERS:
        assert saved[layer] >= 95.0, (layer, saved[layer])
    assert saved["trunk_unchanged"] is True and len(saved["trunk_sha256"]) == 64
    assert (saved["train_images"], saved["val_images"], saved["classes"]) == (48, 24, 3)
    # at 32 px the maps are small, so the pooled dims are below ~9k (stated per layer)
    assert [saved["layers"][layer]["dims"] for layer in LAYERS] == [6144, 4096, 1536, 1536, 1024]


def test_pooling_follows_the_standard_alexnet_protocol_at_96_and_64_px():
    trunk_at = {size: load_backbone(None, "random", size) for size in (96, 64)}
    dims = {size: [s.dims for s in layer_shapes(b, size).values()] for size, b in trunk_at.items()}
    assert dims[96] == [9600, 9216, 9600, 9600, 9216]  # 96x10x10, 256x6x6, 384x5x5, 384x5x5, 256x6x6
    assert dims[64] == [9600, 9216, 6144, 6144, 4096]


def test_rerun_trains_only_the_heads_from_cached_features(toy, tmp_path, monkeypatch):
    train, val = toy
    first = run_probe(str(train), str(val), tmp_path, init="random", options=ProbeOptions(**FAST))
    assert len(list((tmp_path / "features").glob("*/meta.json"))) == 2

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(features_module, "extract_features", no_extraction)
    again = run_probe(str(train), str(val), tmp_path, init="random", options=ProbeOptions(**FAST))
    assert [again[layer] for layer in LAYERS] == [first[layer] for layer in LAYERS]
    # another network must not pick up those features
    with pytest.raises(AssertionError, match="extracted again"):
        run_probe(str(train), str(val), tmp_path, init="random", options=ProbeOptions(**FAST, seed=1))


def test_probe_fails_when_the_trunk_changes_during_probing(toy, tmp_path, monkeypatch):
    train, val = toy
    real = probe_module.cached_features

    def drifting_batchnorm(backbone, *args, **kwargs):
        cache = real(backbone, *args, **kwargs)
        backbone.net.bn5.norm.running_mean.add_(0.01)  # as a forward pass in train mode would do
        return cache

    monkeypatch.setattr(probe_module, "cached_features", drifting_batchnorm)
    with pytest.raises(TrunkChangedError, match="changed during evaluation"):
        run_probe(str(train), str(val), tmp_path, init="random", options=ProbeOptions(**FAST))
    assert not (tmp_path / "probe.json").exists()


def test_fingerprint_sees_weights_and_batchnorm_statistics_not_memory_layout():
    trunk = load_backbone(None, "random", 32).net
    before = fingerprint(trunk)
    assert check_unchanged(before, trunk.to(memory_format=torch.channels_last), "trunk") == before
    with torch.no_grad():
        trunk.conv3.weight[0, 0, 0, 0] += 1e-3
    with pytest.raises(TrunkChangedError):
        check_unchanged(before, trunk, "trunk")
    trunk = load_backbone(None, "random", 32).net
    trunk.bn5.norm.running_var.mul_(1.5)
    with pytest.raises(TrunkChangedError):
        check_unchanged(before, trunk, "trunk")


def test_every_checkpoint_kind_loads_with_its_layers(tmp_path):
    spot = load_backbone(write_checkpoint(tmp_path / "spot.pt", "spot"))
    supervised = load_backbone(write_checkpoint(tmp_path / "sup.pt", "supervised"))
    encoder = load_backbone(write_checkpoint(tmp_path / "ae.pt", "autoencoder"))
    assert (spot.kind, spot.layers, spot.image_size) == ("spot", LAYERS, 32)
    assert (supervised.kind, supervised.layers) == ("supervised", LAYERS)
    rotnet = load_backbone(write_checkpoint(tmp_path / "rot.pt", "rotnet"))
    assert (encoder.kind, encoder.layers) == ("autoencoder", ENCODER_LAYERS)
    assert (rotnet.kind, rotnet.layers) == ("rotnet", LAYERS)
    saved = torch.load(tmp_path / "spot.pt", weights_only=True)["discriminator"]
    assert all(torch.equal(v, saved[f"trunk.{k}"]) for k, v in spot.net.state_dict().items())
    saved = torch.load(tmp_path / "rot.pt", weights_only=True)["trunk"]
    assert all(torch.equal(v, saved[k]) for k, v in rotnet.net.state_dict().items())
    assert not spot.training and not any(p.requires_grad for p in spot.parameters())
    assert not rotnet.training and not any(p.requires_grad for p in rotnet.parameters())
    with pytest.raises(CheckpointError, match="needs a train-spot, train-supervised, train-rotnet or train-ae"):
        load_backbone(write_checkpoint(tmp_path / "odd.pt", "something-else"))


def test_encoder_probe_reports_enc_layers(toy, tmp_path):
    train, val = toy
    report = run_probe(str(train), str(val), tmp_path, write_checkpoint(tmp_path / "ae.pt", "autoencoder"),
                       options=ProbeOptions(**FAST))
    assert set(ENCODER_LAYERS) <= set(report) and report["model"] == "autoencoder"
    assert all(report[layer] >= 90.0 for layer in ENCODER_LAYERS)


def test_mismatched_classes_and_unlabelled_folders_are_refused(toy, tmp_path):
    train, _ = toy
    other = write_images(tmp_path / "other", 4, classes=2)
    with pytest.raises(EvaluationError, match="different classes"):
        run_probe(str(train), str(other), tmp_path / "p", init="random", options=ProbeOptions(**FAST))
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes((train / "class_0" / "img_000.png").read_bytes())
    with pytest.raises(EvaluationError, match="has no class folders"):
        run_probe(str(flat), str(train), tmp_path / "p", init="random", options=ProbeOptions(**FAST))


@pytest.mark.parametrize("case, message", [
    ("missing", "data path does not exist"),
    ("wrong-kind", "evaluation needs a train-spot, train-supervised, train-rotnet or train-ae"),
    ("random-with-checkpoint", "--init random evaluates a freshly initialised discriminator"),
    ("no-network", "pass --checkpoint CKPT"),
])
def test_bad_input_is_one_clear_line(toy, tmp_path, capsys, case, message):
    train, val = toy
    args = ["probe", "--train", str(train), "--val", str(val), "--out", str(tmp_path / "p"), "--workers", "0"]
    if case == "missing":
        args[2] = str(tmp_path / "nowhere")
        args += ["--init", "random"]
    elif case == "wrong-kind":
        args += ["--checkpoint", str(write_checkpoint(tmp_path / "odd.pt", "demo"))]
    elif case == "random-with-checkpoint":
        args += ["--init", "random", "--checkpoint", "x.pt"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
