"""spotart.official: the authors' variable names onto spotart's networks, and ``spotart import-official``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotart.cli import main
from spotart.models import AutoEncoder, Discriminator
from spotart.models.repair import RepairNetwork
from spotart.official import (
    OfficialWeightsError,
    convert_official,
    export_official,
    load_into,
    official_names,
    read_official_file,
)


def _official_networks(seed: int = 0):
    torch.manual_seed(seed)
    modules = {"autoencoder": AutoEncoder(init="official", upsampling="tf_legacy"),
               "repair": RepairNetwork(init="official"),
               "discriminator": Discriminator(64, init="official", padding="tf_same", fc1_bn_scale=False)}
    for module in modules.values():  # non-trivial BatchNorm statistics, so that a mix-up shows
        for name, buffer in module.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.uniform_(0.5, 1.5)
    return modules


def _official_arrays(modules, parts=("autoencoder", "repair", "discriminator")):
    return export_official({part: modules[part].state_dict() for part in parts})


def test_export_then_import_gives_the_same_networks_and_tf_layouts():
    modules = _official_networks()
    arrays = _official_arrays(modules)
    assert arrays["discriminator/conv_1/weights"].shape == (11, 11, 3, 96)  # HWIO
    assert arrays["discriminator/conv_2/conv_1/weights"].shape == (5, 5, 48, 128)  # one group of two
    assert arrays["discriminator/fc_1/weights"].shape == (4, 4, 256, 4096)  # a 4x4 VALID convolution at 64 px
    assert arrays["generator/repair_0/conv1/weights"].shape == (3, 3, 513, 512)
    assert sorted(arrays) == sorted(official_names())
    fresh = _official_networks(seed=1)
    for part, state in convert_official(arrays).items():
        load_into(fresh[part], state, part)
        for key, value in modules[part].state_dict().items():
            assert torch.equal(fresh[part].state_dict()[key], value), f"{part}.{key}"


def test_fc1_kernel_is_read_in_tfs_hwc_order():
    """fc_1 officially convolves NHWC conv5 with a (g, g, 256, 4096) kernel; spotart's Linear sees NCHW flattened."""
    conv5 = torch.randn(2, 256, 4, 4)
    kernel = np.random.default_rng(0).standard_normal((4, 4, 256, 8)).astype(np.float32)
    tf_out = np.einsum("nhwc,hwco->no", conv5.permute(0, 2, 3, 1).numpy(), kernel)
    disc = Discriminator(64, padding="tf_same", fc1_bn_scale=False)
    arrays = _official_arrays({"discriminator": disc}, ("discriminator",))
    arrays["discriminator/fc_1/weights"] = np.concatenate([kernel, np.zeros((4, 4, 256, 4088), np.float32)], -1)
    load_into(disc, convert_official(arrays)["discriminator"], "discriminator")
    ours = disc.class_head[1](conv5.flatten(1))[:, :8]
    np.testing.assert_allclose(ours.detach().numpy(), tf_out, rtol=1e-4, atol=1e-3)


def test_missing_unexpected_and_misshapen_variables_are_one_line_errors():
    arrays = _official_arrays(_official_networks(), ("discriminator",))
    missing = {k: v for k, v in arrays.items() if k != "discriminator/conv_3/biases"}
    with pytest.raises(OfficialWeightsError, match="missing official variable 'discriminator/conv_3/biases'"):
        convert_official(missing)
    with pytest.raises(OfficialWeightsError, match="unexpected official variable 'discriminator/conv_6/weights'"):
        convert_official({**arrays, "discriminator/conv_6/weights": np.zeros(3, np.float32)})
    wrong = {**arrays, "discriminator/conv_3/weights": np.zeros((3, 3, 256, 380), np.float32)}
    disc = Discriminator(64, padding="tf_same", fc1_bn_scale=False)
    with pytest.raises(OfficialWeightsError, match=r"discriminator.trunk.conv3.weight: the official value has shape "
                                                   r"\(380, 256, 3, 3\).*spotart's is \(384, 256, 3, 3\)"):
        load_into(disc, convert_official(wrong)["discriminator"], "discriminator")
    # a discriminator built with fc_1's BatchNorm scale is not the official one
    with pytest.raises(OfficialWeightsError, match="has no tensor 'class_head.2.norm.running_mean'"):
        load_into(Discriminator(64, padding="tf_same"), convert_official(arrays)["discriminator"], "discriminator")


def test_optimiser_and_moving_average_bookkeeping_is_skipped():
    arrays = _official_arrays(_official_networks(), ("autoencoder",))
    arrays.update({"global_step": np.array(7), "beta1_power": np.float32(0.5),
                   "encoder/conv_0/weights/Adam": np.zeros(1, np.float32),
                   "encoder/conv_0/weights/Adam_1": np.zeros(1, np.float32),
                   "encoder/conv_0/weights/ExponentialMovingAverage": np.zeros(1, np.float32)})
    assert set(convert_official(arrays)) == {"autoencoder"}


def test_import_official_writes_checkpoints_that_spotart_reads(tmp_path, capsys):
    from spotart.evaluation.backbones import load_backbone
    from spotart.train.stage2 import load_autoencoder

    modules = _official_networks()
    modules["autoencoder"].eval()
    full = tmp_path / "official.npz"
    np.savez(full, global_step=np.array(195250), **_official_arrays(modules))
    assert main(["import-official", str(full), "--out", str(tmp_path / "spot.pt")]) == 0
    assert "a spot checkpoint" in capsys.readouterr().out
    backbone = load_backbone(tmp_path / "spot.pt")
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    expected = modules["discriminator"].eval().forward_features(images)
    got = backbone(images)
    for layer in ("conv1", "conv5"):
        assert torch.allclose(got[layer], expected[layer], atol=1e-5), layer
    autoencoder = load_autoencoder(tmp_path / "spot.pt")  # the frozen autoencoder travels with it
    assert autoencoder.decoder.upsampling == "tf_legacy"
    assert torch.allclose(autoencoder(images), modules["autoencoder"](images), atol=1e-6)

    ae_only = tmp_path / "ae.npz"
    np.savez(ae_only, **_official_arrays(modules, ("autoencoder",)))
    assert main(["import-official", str(ae_only), "--out", str(tmp_path / "ae.pt"), "--image-size", "64"]) == 0
    imported = load_autoencoder(tmp_path / "ae.pt", image_size=64)
    assert torch.allclose(imported(images), modules["autoencoder"](images), atol=1e-6)


def test_import_official_bad_files_are_one_line_errors(tmp_path, capsys):
    truncated = tmp_path / "truncated.npz"
    np.savez(tmp_path / "whole.npz", **_official_arrays(_official_networks(), ("autoencoder",)))
    truncated.write_bytes((tmp_path / "whole.npz").read_bytes()[:5000])
    assert main(["import-official", str(truncated), "--out", str(tmp_path / "x.pt")]) != 0
    assert "is not a readable .npz file" in capsys.readouterr().err
    assert main(["import-official", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "x.pt")]) != 0
    assert "does not exist" in capsys.readouterr().err
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{"discriminator/fc_1/weights#slice": np.zeros(2, np.float32)})
    with pytest.raises(OfficialWeightsError, match="partial array"):
        read_official_file(partial)
    assert not (tmp_path / "x.pt").exists()
