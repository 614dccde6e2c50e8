"""``spotart train-rotnet``: rotations and their labels, the head, the loop (resume, time budget, NaN guard, bf16,
monitor), and the commands that read its checkpoint."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from spotart.cli import main
from spotart.config import ConfigError, build_config
from spotart.data import training_loader
from spotart.evaluation.backbones import fingerprint, load_backbone
from spotart.inspection.export import export_backbone
from spotart.inspection.export import load_backbone as load_exported
from spotart.models import LAYERS, RotNet, Trunk
from spotart.train import rotnet
from spotart.train.checkpoints import CheckpointError, load_checkpoint
from spotart.train.device import Runtime
from spotart.train.nonfinite import NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.rotnet import all_rotations, rotnet_step, train_rotnet

from ..helpers import IMAGENETTE_TRAIN, real_data, torch_threads, write_images

FAST = ["num_workers=0", "progress=false", "log_every=1", "image_every=1", "checkpoint_every=2"]


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _cfg(data, steps=2, size=32, batch=4, extra=()):
    return build_config("train-rotnet", set_pairs=FAST + [f"data={data}", f"image_size={size}", f"batch_size={batch}",
                                                          f"steps={steps}", "rotnet_hidden=64", *extra])


# ------------------------------------------------------------------------------------------------- rotations
def test_each_label_holds_its_image_turned_by_that_many_quarter_turns():
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)  # no symmetry at all
    rotated, labels = all_rotations(images)
    assert rotated.shape == (8, 3, 5, 5) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for k in range(4):
        assert torch.equal(rotated[labels == k], torch.rot90(images, k, dims=(-2, -1))), k
    assert torch.equal(rotated[labels == 0], images)
    # label 1 is a quarter turn counter-clockwise: the top-right pixel becomes the top-left one
    marked = torch.zeros(1, 1, 5, 5)
    marked[0, 0, 0, 4] = 1.0
    turned, labels = all_rotations(marked)
    assert turned[1, 0, 0, 0] == 1.0 and turned[1].sum() == 1.0
    assert turned[2, 0, 4, 0] == 1.0 and turned[3, 0, 4, 4] == 1.0  # half turn: bottom-left; three: bottom-right
    assert len({turned[k].flatten().argmax().item() for k in range(4)}) == 4  # four different images


def test_a_rotation_of_a_rotation_composes():
    images = torch.randn(3, 3, 8, 8)
    rotated, labels = all_rotations(images)
    for a in range(4):
        again, again_labels = all_rotations(rotated[labels == a])
        for b in range(4):
            assert torch.equal(again[again_labels == b], rotated[labels == (a + b) % 4]), (a, b)


def test_non_square_images_are_refused():
    with pytest.raises(ValueError, match="non-square"):
        all_rotations(torch.zeros(1, 3, 32, 48))


@pytest.mark.parametrize(("size", "fc_inputs"), [(32, 256), (64, 1024), (96, 2304)])
def test_the_head_reads_pool5_of_conv5_at_each_size(size, fc_inputs):
    model = RotNet(size, hidden=32).eval()
    assert model.head.fc_block[1].in_features == fc_inputs  # 256 x ceil(size / 32)^2
    logits = model(torch.zeros(2, 3, size, size))
    assert logits.shape == (2, 4)
    with pytest.raises(ValueError, match="built for"):
        model(torch.zeros(2, 3, size + 16, size + 16))


def test_the_head_is_rotnets_alexnet_head():
    head = RotNet(64).head
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in head.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == [
        (1024, 4096, False), (4096, 4096, False), (4096, 4, True)]
    assert [m.num_features for m in norms] == [4096, 4096]
    assert not [m for m in head.modules() if isinstance(m, torch.nn.Dropout)]


def test_a_non_finite_loss_skips_the_update():
    model = RotNet(32, hidden=16)
    optimizer = make_adam(model, build_config("train-rotnet", set_pairs=["data=x"]))
    before = [p.detach().clone() for p in model.parameters()]
    guard = NonFiniteGuard()
    images = torch.full((2, 3, 32, 32), float("nan"))
    metrics = rotnet_step(model, model, images, optimizer, Runtime(torch.device("cpu"), None, False), guard, 0)
    assert not math.isfinite(float(metrics["loss"])) and guard.total == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no weight moved


def test_bad_rotnet_keys_are_config_errors():
    with pytest.raises(ConfigError, match="max_seconds must be >= 0"):
        build_config("train-rotnet", set_pairs=["max_seconds=-1"])
    with pytest.raises(ConfigError, match="unknown config key 'drop_rate'"):
        build_config("train-rotnet", set_pairs=["drop_rate=0.5"])


# ---------------------------------------------------------------------------------------------- training loop
def _rotation_loss(model: RotNet, images: torch.Tensor) -> float:
    """Cross-entropy on all four rotations of ``images``, BatchNorm on the batch's statistics, on a copy (no side
    effects on ``model``)."""
    rotated, labels = all_rotations(images)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(copy.deepcopy(model).train()(rotated), labels))


def test_a_few_steps_on_real_images_lower_the_loss(tmp_path):
    data = real_data(IMAGENETTE_TRAIN)
    cfg = _cfg(data, steps=30, batch=8, extra=["checkpoint_every=100", "image_every=100", "rotnet_hidden=256",
                                                "lr=3e-4", "precision=fp32", "seed=1"])
    checkpoint = train_rotnet(cfg, str(tmp_path / "run"))
    rows = [row for row in _rows(tmp_path / "run") if "loss" in row]
    assert [row["step"] for row in rows] == list(range(1, 31)) and all(math.isfinite(r["loss"]) for r in rows)
    torch.manual_seed(1)
    start = RotNet(32, hidden=256)  # the network the run started from (its seed; the trunk is built first)
    trained = RotNet(32, hidden=256)
    payload = load_checkpoint(checkpoint)
    trained.trunk.load_state_dict(payload["trunk"])
    trained.head.load_state_dict(payload["head"])
    held_out = _cfg(data, batch=64, extra=["seed=7"])  # 64 other augmented real images, 256 rotated inputs
    images = next(iter(training_loader(held_out)[0]))["images"]
    before, after = _rotation_loss(start, images), _rotation_loss(trained, images)
    assert before > 1.35 and after < before - 0.05, (before, after)  # chance: ln 4 = 1.386; measured 1.41 -> 1.31


@pytest.mark.parametrize("scheme", [{}, {"disc_init": "official", "disc_padding": "centred"}, {"disc_init": "normal"}])
def test_the_trunk_starts_as_the_random_init_of_its_seed_and_the_monitor_sees_step_0(tmp_path, image_folder, scheme):
    seen = {}

    def monitor(model, step):
        if step == 0:
            seen["start"] = fingerprint(model.trunk)
        return {"knn_conv5": 50.0 + step} if step % 2 == 0 else {}

    keys = [f"{key}={value}" for key, value in scheme.items()]
    train_rotnet(_cfg(image_folder, steps=3, extra=["seed=3", *keys]), str(tmp_path / "run"), monitor=monitor)
    assert seen["start"] == fingerprint(load_backbone(None, "random", 32, seed=3, random_config=scheme).net)
    if scheme:  # probe and export rebuild the trunk with the padding it was trained with
        checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
        assert load_backbone(checkpoint).net.padding == scheme.get("disc_padding", "symmetric")
        assert export_backbone(checkpoint, tmp_path / "b.safetensors").padding == scheme.get("disc_padding",
                                                                                                "symmetric")
    rows = _rows(tmp_path / "run")
    knn = [row for row in rows if "knn_conv5" in row]
    assert [(r["step"], r["knn_conv5"]) for r in knn] == [(0, 50.0), (2, 52.0)]
    assert rows[0]["step"] == 0 and "loss" not in rows[0]
    train_rows = [row for row in rows if "loss" in row]
    assert all(math.isfinite(r["loss"]) and 0 <= r["rot_acc"] <= 1 and r["images_per_s"] > 0 for r in train_rows)
    walls = [row["wall_s"] for row in rows]
    assert walls == sorted(walls) and walls[0] >= 0


def test_resume_is_exact_and_wall_time_adds_up(tmp_path, monkeypatch):
    data = write_images(tmp_path / "imgs", 16, size=40)
    whole = _cfg(data, steps=4, extra=["precision=fp32"])
    train_rotnet(whole, str(tmp_path / "whole"))

    real_step, calls = rotnet.rotnet_step, []

    def crash_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(rotnet, "rotnet_step", crash_at_step_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_rotnet(whole, str(tmp_path / "part"))  # dies after the checkpoint at step 2
    saved = load_checkpoint(tmp_path / "part" / "checkpoints" / "latest.pt", expect_stage="rotnet")
    monkeypatch.setattr(rotnet, "rotnet_step", real_step)
    train_rotnet(whole, str(tmp_path / "part"), resume=True)
    rows = _rows(tmp_path / "part")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["wall_s"] >= saved["wall_s"] >= rows[1]["wall_s"]  # the clock goes on from the checkpoint
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "latest.pt")
    assert b["step"] == 4
    for part in ("trunk", "head"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)


def test_a_time_budget_ends_the_run_at_a_checkpoint(tmp_path, image_folder):
    cfg = _cfg(image_folder, steps=500, batch=2, extra=["max_seconds=1.5", "log_every=1000", "checkpoint_every=1000"])
    latest = train_rotnet(cfg, str(tmp_path / "run"))
    payload = load_checkpoint(latest)
    rows = _rows(tmp_path / "run")
    assert 1 <= payload["step"] < 500 and rows[-1]["step"] == payload["step"]  # the last step is logged and saved
    assert 1.5 <= payload["wall_s"] and rows[-1]["wall_s"] >= 1.5
    assert rows[-1]["lr"] < 0.1 * cfg.lr  # the schedule decayed over the time budget, not over 500 steps
    # resuming a run whose budget is spent trains nothing more
    assert train_rotnet(cfg, str(tmp_path / "run"), resume=True) == latest
    assert load_checkpoint(latest)["step"] == payload["step"] and len(_rows(tmp_path / "run")) == len(rows)


def test_bf16_and_channels_last_run_a_step(tmp_path, image_folder):
    seen = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, inp, out: seen.add(out.dtype) if isinstance(mod, torch.nn.Conv2d) else None)
    try:
        train_rotnet(_cfg(image_folder, steps=1, extra=["precision=bf16", "channels_last=on"]), str(tmp_path / "r"))
    finally:
        hook.remove()
    assert torch.bfloat16 in seen and math.isfinite(_rows(tmp_path / "r")[0]["loss"])


# ------------------------------------------------------------------------------------ readers of the checkpoint
@pytest.fixture(scope="module")
def rotnet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotnet")
    data = write_images(root / "data", 12, size=40)
    with torch_threads(1):
        assert main(["train-rotnet", "--data", str(data), "--out", str(root / "run"), "--image-size", "32",
                     "--batch-size", "4", "--steps", "2", "--set", "num_workers=0", "--set", "progress=false",
                     "--set", "rotnet_hidden=32", "--set", "precision=fp32"]) == 0
    return root


def test_probe_and_export_read_the_trained_trunk(rotnet_run, tmp_path):
    checkpoint = rotnet_run / "run" / "checkpoints" / "latest.pt"
    payload = load_checkpoint(checkpoint)
    assert payload["stage"] == "rotnet" and payload["step"] == 2 and "discriminator" not in payload
    trained = Trunk()
    trained.load_state_dict(payload["trunk"])
    trained.eval()
    backbone = load_backbone(checkpoint)
    assert backbone.kind == "rotnet" and backbone.layers == LAYERS and backbone.image_size == 32
    info = export_backbone(rotnet_run / "run", tmp_path / "b.safetensors")  # a run directory stands for latest.pt
    assert (info.step, info.image_size) == (2, 32)
    exported = load_exported(tmp_path / "b.safetensors")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = trained.forward_features(images)
        for got in (backbone(images), exported.forward_features(images)):
            for layer in LAYERS:
                assert torch.equal(got[layer], expected[layer]), layer
    assert not torch.equal(trained.bn5.norm.running_mean, torch.zeros(256))  # trained statistics travel too
    from spotart.voc.engine import load_trunk

    voc_trunk, origin = load_trunk(str(checkpoint))  # the VOC commands fine-tune the same weights
    assert origin == str(checkpoint) and all(p.requires_grad for p in voc_trunk.parameters())
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in voc_trunk.state_dict().items())


def test_a_rotnet_checkpoint_where_a_stage2_one_is_needed_is_named(rotnet_run, capsys):
    with pytest.raises(CheckpointError, match="is a train-rotnet checkpoint; a stage-2 .train-spot. checkpoint"):
        load_checkpoint(rotnet_run / "run" / "checkpoints" / "latest.pt", expect_stage="spot")
    assert main(["report", str(rotnet_run / "run")]) == 2
    assert "train-rotnet" in capsys.readouterr().err
