"""Both stages end to end: real images, run directory contents, resume, bf16."""

from __future__ import annotations

import json
import math

import pytest
import torch

from spotart.config import build_config
from spotart.train import stage2
from spotart.train.checkpoints import CheckpointError, load_checkpoint
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from ..helpers import IMAGENETTE_TRAIN, real_data, write_images

FAST = ["num_workers=0", "progress=false", "log_every=1", "image_every=1", "checkpoint_every=2"]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _ae(tmp_path, data, size, steps=2, extra=()):
    cfg = build_config("train-ae", set_pairs=FAST + [f"data={data}", f"image_size={size}", "batch_size=4",
                                                     f"steps={steps}", *extra])
    return train_autoencoder(cfg, str(tmp_path / "ae"))


def _spot_cfg(data, size, ae_ckpt, steps=2, extra=()):
    return build_config("train-spot", set_pairs=FAST + [f"data={data}", f"image_size={size}", "batch_size=4",
                                                        f"steps={steps}", f"autoencoder={ae_ckpt}", *extra])


def test_two_steps_of_each_stage_on_real_images(tmp_path):
    data = real_data(IMAGENETTE_TRAIN)
    ae_ckpt = _ae(tmp_path, data, 96)
    ae_rows = _rows(tmp_path / "ae")
    assert [r["step"] for r in ae_rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in ae_rows)
    train_spot(_spot_cfg(data, 96, ae_ckpt), str(tmp_path / "spot"))
    run = tmp_path / "spot"
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("c_loss", "c_gan", "c_mask", "r_loss", "r_gan", "r_recon", "disc_acc", "mask_acc_fake",
                    "images_per_s", "lr"):
            assert math.isfinite(row[key]), key
        assert 0 <= row["disc_acc"] <= 1 and row["epoch"] == 0
    assert (run / "config.yaml").read_text().startswith("command: train-spot")
    assert (run / "checkpoints" / "latest.pt").is_file() and list((run / "images").glob("artifacts_*.png"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    data = write_images(tmp_path / "imgs", 16, size=40)
    ae_ckpt = _ae(tmp_path, data, 32, extra=["precision=fp32"])
    whole = _spot_cfg(data, 32, ae_ckpt, steps=4, extra=["precision=fp32"])
    train_spot(whole, str(tmp_path / "whole"))

    real_step, calls = stage2.spot_step, []

    def crash_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(stage2, "spot_step", crash_at_step_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_spot(whole, str(tmp_path / "part"))  # dies after the checkpoint at step 2
    monkeypatch.setattr(stage2, "spot_step", real_step)
    train_spot(whole, str(tmp_path / "part"), resume=True)
    assert [r["step"] for r in _rows(tmp_path / "part")] == [1, 2, 3, 4]
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "latest.pt")
    assert b["step"] == 4
    for key, value in a["discriminator"].items():
        assert torch.allclose(value.float(), b["discriminator"][key].float(), atol=1e-6), key


def test_starting_over_an_existing_run_is_refused(tmp_path, image_folder):
    _ae(tmp_path, image_folder, 32)
    with pytest.raises(CheckpointError, match="pass --resume"):
        _ae(tmp_path, image_folder, 32)


def test_bf16_path_runs_a_full_step(tmp_path, image_folder):
    seen = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, inp, out: seen.add(out.dtype) if isinstance(mod, torch.nn.Conv2d) else None)
    try:
        ae_ckpt = _ae(tmp_path, image_folder, 96, steps=1, extra=["precision=bf16", "channels_last=on"])
        train_spot(_spot_cfg(image_folder, 96, ae_ckpt, steps=1, extra=["precision=bf16", "channels_last=on"]),
                   str(tmp_path / "spot"))
    finally:
        hook.remove()
    assert torch.bfloat16 in seen
    row = _rows(tmp_path / "spot")[0]
    assert math.isfinite(row["c_loss"]) and math.isfinite(row["r_loss"])


def test_stage2_refuses_an_autoencoder_of_another_size(tmp_path, image_folder):
    ae_ckpt = _ae(tmp_path, image_folder, 32, steps=1)
    with pytest.raises(CheckpointError, match="trained on 32 px images; this run is at 64 px"):
        train_spot(_spot_cfg(image_folder, 64, ae_ckpt, steps=1), str(tmp_path / "spot"))


def test_truncated_checkpoint_is_a_clear_error(tmp_path, image_folder):
    ae_ckpt = _ae(tmp_path, image_folder, 32, steps=1)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(ae_ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(broken)


def test_knn_val_without_a_monitor_is_said_in_the_log(tmp_path, caplog):
    """From Python, train_spot takes the monitor from its caller; a config that asks for one gets a warning."""
    train = write_images(tmp_path / "train", 16, size=40, classes=2)
    val = write_images(tmp_path / "val", 8, size=40, classes=2, seed=1)
    ae_ckpt = _ae(tmp_path, train, 32, steps=1)
    train_spot(_spot_cfg(train, 32, ae_ckpt, steps=1, extra=[f"knn_val={val}"]), str(tmp_path / "spot"))
    assert "knn_val is set but no monitor was handed to train_spot" in caplog.text
    assert not [r for r in _rows(tmp_path / "spot") if any(k.startswith("knn_") for k in r)]


def test_resuming_with_another_network_is_refused_and_a_key_older_than_the_run_reads_as_its_default(tmp_path,
                                                                                                   image_folder):
    ae_ckpt = _ae(tmp_path, image_folder, 32, steps=1)
    pairs = FAST + [f"data={image_folder}", "image_size=32", "batch_size=4", "steps=2"]
    # the official stage-1 preset now decodes with TF1's legacy x2: its older runs were trained with half_pixel
    asked = build_config("train-ae", set_pairs=pairs + ["decoder_upsampling=tf_legacy"])
    with pytest.raises(CheckpointError, match=r"trained with decoder_upsampling=half_pixel \(asked: tf_legacy\): "
                                              r"resume with --set decoder_upsampling=half_pixel"):
        train_autoencoder(asked, str(tmp_path / "ae"), resume=True)
    payload = torch.load(ae_ckpt, weights_only=False)
    del payload["config"]["decoder_upsampling"]  # a checkpoint from before the key existed
    torch.save(payload, ae_ckpt)
    with pytest.raises(CheckpointError, match="decoder_upsampling=half_pixel"):
        train_autoencoder(asked, str(tmp_path / "ae"), resume=True)
    resumed = train_autoencoder(build_config("train-ae", set_pairs=pairs), str(tmp_path / "ae"), resume=True)
    assert load_checkpoint(resumed)["step"] == 2

    spot = _spot_cfg(image_folder, 32, ae_ckpt, steps=1)
    train_spot(spot, str(tmp_path / "spot"))
    with pytest.raises(CheckpointError, match=r"trained with disc_padding=symmetric \(asked: tf_same\), passes=1 "
                                              r"\(asked: 2\): resume with --set disc_padding=symmetric --set passes=1"):
        train_spot(_spot_cfg(image_folder, 32, ae_ckpt, steps=2, extra=["disc_padding=tf_same", "passes=2"]),
                   str(tmp_path / "spot"), resume=True)


def test_resuming_at_another_image_size_is_refused(tmp_path, image_folder):
    _ae(tmp_path, image_folder, 32, steps=1)
    cfg = build_config("train-ae", set_pairs=FAST + [f"data={image_folder}", "image_size=64", "batch_size=4",
                                                     "steps=2"])
    with pytest.raises(CheckpointError, match="trained at 32 px, not 64 px"):
        train_autoencoder(cfg, str(tmp_path / "ae"), resume=True)
