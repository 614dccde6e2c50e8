"""The official preset end to end, and the official R objective inside a stage-2 step (FIDELITY.md sect. 1)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from spotart.config import SpotConfig, build_config
from spotart.models import AutoEncoder
from spotart.models.damage import upsample_mask
from spotart.train.device import Runtime
from spotart.train.optimisation import make_adam, scale_bias_grads, use_tf_adam_epsilon
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import build_models, spot_step, train_spot

from ..helpers import REPO, write_images

PRESET = REPO / "configs" / "official_stl10.yaml"
AE_PRESET = REPO / "configs" / "official_stl10_ae.yaml"
CPU = Runtime(torch.device("cpu"), None, False)
# what the end-to-end test changes so that it runs in seconds on generated images; every other key is the file's
SMALL = {"image_size": 32, "batch_size": 4, "steps": 2, "num_workers": 0, "progress": False, "log_every": 1,
         "image_every": 1, "checkpoint_every": 2}


def _small_pairs(data: Path) -> list[str]:
    return [f"data={data}"] + [f"{key}={str(value).lower()}" for key, value in SMALL.items()]


def _assert_holds_every_value(resolved: dict, preset: Path, changed: dict) -> None:
    for key, value in yaml.safe_load(preset.read_text()).items():
        expected = changed.get(key, value)
        got = resolved[key]
        if isinstance(expected, float) or isinstance(got, float):
            assert got == pytest.approx(expected, rel=1e-12), key
        else:
            assert got == expected, key


def test_both_official_presets_train_and_their_run_dirs_hold_every_value_they_set(tmp_path):
    data = write_images(tmp_path / "images", 8, size=40)
    ae_config = build_config("train-ae", str(AE_PRESET), _small_pairs(data))
    ae_checkpoint = train_autoencoder(ae_config, str(tmp_path / "ae"))
    spot_config = build_config("train-spot", str(PRESET), _small_pairs(data) + [f"autoencoder={ae_checkpoint}"])
    train_spot(spot_config, str(tmp_path / "spot"))
    changed = {**SMALL, "data": str(data)}
    _assert_holds_every_value(yaml.safe_load((tmp_path / "ae" / "config.yaml").read_text()), AE_PRESET, changed)
    _assert_holds_every_value(yaml.safe_load((tmp_path / "spot" / "config.yaml").read_text()), PRESET, changed)
    rows = [json.loads(line) for line in (tmp_path / "spot" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "c_loss" in row]
    assert len(steps) == 2
    for row in steps:
        for key in ("c_loss", "c_gan", "c_mask", "r_loss", "r_gan", "r_recon", "r_total"):
            assert math.isfinite(row[key]), (key, row)
        assert row["r_total"] == pytest.approx(row["r_loss"] + row["c_loss"], rel=1e-4)  # the official total
    assert "official_loss_quirk" not in (tmp_path / "spot" / "config.yaml").read_text()  # renamed keys never written


def _trained_looking_autoencoder() -> AutoEncoder:
    ae = AutoEncoder().train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        ae(torch.rand(8, 3, 32, 32) * 2 - 1)
    return ae.eval()


def _official_config(**changes) -> SpotConfig:
    values = dict(image_size=32, batch_size=4, steps=2, precision="fp32", channels_last="off", repair_loss="official",
                  repair_init="official", disc_init="official", disc_padding="tf_same", fc1_bn_scale=False)
    return SpotConfig(**{**values, **changes})


def _hand_made_official_total(discriminator, generated, images, batch: int):
    """R's official loss written out from the logits: both halves of 2B, C's data terms included."""
    both = discriminator(torch.cat([generated.real, generated.fake]))
    log_p = F.log_softmax(both.class_logits, dim=1)  # (2B, 2): column 1 = real
    cells = both.mask_logits[0].numel()
    bce = F.binary_cross_entropy_with_logits
    targets = torch.cat([torch.ones_like(generated.keep_mask), generated.keep_mask])
    cell_losses = bce(both.mask_logits, targets, reduction="none").flatten(1).sum(1)  # (2B,)
    # each image's share of C's terms (true labels, mask) and of the flipped-label term, all means over 2B
    per_image = -(log_p[:, 1] + log_p[:, 0]) / (2 * batch) + 0.1 * cell_losses / (2 * batch * cells)
    keep = upsample_mask(generated.keep_mask, images.shape[-1])
    mse = ((generated.fake - images) ** 2 * keep).sum() / (keep.sum() * 3)
    return per_image[:batch].sum(), per_image[batch:].sum() + 30.0 * mse  # real half, fake half


def test_a_stage2_step_takes_rs_gradient_of_the_official_total_with_the_real_half_coupled_by_batchnorm():
    cfg = _official_config()
    models = build_models(cfg, _trained_looking_autoencoder(), CPU)
    generator, discriminator = copy.deepcopy(models.generator), copy.deepcopy(models.discriminator)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    captured = {}
    step_r = models.opt_r.step
    models.opt_r.step = lambda: (captured.update({id(p): p.grad.clone() for p in models.repair_params}), step_r())
    torch.manual_seed(7)  # the same dropout mask in both computations
    spot_step(models, images, cfg, CPU, 0, torch.Generator().manual_seed(3))

    torch.manual_seed(7)
    generated = generator(images, torch.Generator().manual_seed(3))
    real_half, fake_half = _hand_made_official_total(discriminator, generated, images, batch=4)
    params = list(generator.repair.parameters())
    by_hand = torch.autograd.grad(real_half + fake_half, params, retain_graph=True)
    fake_half_only = torch.autograd.grad(fake_half, params, retain_graph=True)
    # the real half (reconstructions labelled real, then fake, and their all-kept masks) reaches R only through C's
    # train-mode BatchNorm statistics over [real; fake] ...
    coupled = torch.autograd.grad(real_half, params, allow_unused=True)
    assert sum(g.abs().sum().item() for g in coupled if g is not None) > 0
    # ... and the step used it: its gradient is the whole total's (to float error), not the fake half's alone
    for param, expected in zip(models.repair_params, by_hand):
        scale = expected.abs().max()
        assert (captured[id(param)] - expected).abs().max() <= 1e-5 * scale
    assert max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(by_hand, fake_half_only)) > 1e-3
    # ... and not at all when C normalises with its running statistics
    discriminator.eval()
    generated = generator(images, torch.Generator().manual_seed(3))
    real_half, _ = _hand_made_official_total(discriminator, generated, images, batch=4)
    assert all(g is None or not g.any() for g in torch.autograd.grad(real_half, params, allow_unused=True))


def test_paper_plus_c_keeps_what_official_loss_quirk_true_trained():
    """An old run's config with official_loss_quirk: true gets R's gradient of r_loss + c_loss, as it did."""
    old = build_config("train-spot", set_pairs=["image_size=32", "batch_size=4", "precision=fp32",
                                                "channels_last=off", "official_loss_quirk=true"])
    assert old.repair_loss == "paper_plus_c"
    models = build_models(old, _trained_looking_autoencoder(), CPU)
    result = spot_step(models, torch.rand(4, 3, 32, 32) * 2 - 1, old, CPU, 0, torch.Generator().manual_seed(1))
    assert result.losses["r_total"].item() == pytest.approx(
        (result.losses["r_loss"] + result.losses["c_loss"]).item(), rel=1e-6)


def test_tf_adam_epsilon_matches_tensorflows_update_by_hand():
    """TF: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps) (MultiGPUTrainer.py:50)."""
    layer = torch.nn.Linear(1, 1, bias=False)
    layer.weight.data.fill_(0.5)
    cfg = build_config("train-spot", set_pairs=["weight_decay=0", "lr=0.1", "beta1=0.5", "adam_eps=0.01"])
    optimizer = make_adam(layer, cfg)
    weight, m, v = 0.5, 0.0, 0.0
    for t, grad in enumerate((1e-3, -2e-3, 5e-4), start=1):
        layer.weight.grad = torch.full_like(layer.weight, grad)
        use_tf_adam_epsilon(optimizer, cfg.adam_eps)
        optimizer.step()
        m, v = 0.5 * m + 0.5 * grad, 0.999 * v + 0.001 * grad**2
        weight -= 0.1 * math.sqrt(1 - 0.999**t) / (1 - 0.5**t) * m / (math.sqrt(v) + 0.01)
        assert layer.weight.item() == pytest.approx(weight, rel=1e-5)
    # without it, PyTorch's own placement: the first step is lr * g / (|g| + eps), 30x TF's here (D10)
    plain = torch.nn.Linear(1, 1, bias=False)
    plain.weight.data.fill_(0.5)
    plain_opt = make_adam(plain, cfg)
    plain.weight.grad = torch.full_like(plain.weight, 1e-3)
    plain_opt.step()
    assert 0.5 - plain.weight.item() == pytest.approx(0.1 * 1e-3 / (1e-3 + 0.01), rel=1e-5)
    tf_first_step = 0.1 * math.sqrt(0.001) / 0.5 * (0.5 * 1e-3) / (math.sqrt(0.001) * 1e-3 + 0.01)
    assert tf_first_step < (0.5 - plain.weight.item()) / 20


def test_bias_gradients_are_scaled_but_batchnorm_shifts_and_weights_are_not():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 4 * 4, 2))
    model(torch.randn(4, 2, 6, 6)).sum().backward()
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    scale_bias_grads(model, 2.0)
    for name, param in model.named_parameters():
        factor = 2.0 if name in ("0.bias", "3.bias") else 1.0  # conv and linear biases; BatchNorm's are beta
        assert torch.equal(param.grad, before[name] * factor), name


def test_decayed_output_bias_is_doubled_with_its_l2_term_as_tf_does():
    """AETrainer.py:41-43 doubles ``decoder/deconv_5/biases``' gradient *after* its L2 term joined it:
    Adam acts on 2 (g + wd b). A plain SGD step (lr 1, no momentum) reads that effective gradient off the update."""
    from spotart.config import AEConfig
    from spotart.models import AutoEncoder

    model = AutoEncoder()
    bias = model.decoder.to_rgb.bias
    bias.data.fill_(0.5)
    cfg = AEConfig(weight_decay=0.1, lr=1.0, beta1=0.0, beta2=0.0, adam_eps=0.0)
    optimizer = make_adam(model, cfg, decay_also=(bias,), decay_also_factor=2.0)
    group = next(g for g in optimizer.param_groups if any(p is bias for p in g["params"]))
    assert group["weight_decay"] == pytest.approx(0.2)
    assert all(g["weight_decay"] in (0.0, 0.1) for g in optimizer.param_groups if g is not group)
    grad = torch.tensor([0.3, -0.2, 0.1])
    bias.grad = grad.clone()
    scale_bias_grads(model, 2.0)
    effective = bias.grad + group["weight_decay"] * bias.detach()
    assert torch.allclose(effective, 2 * (grad + 0.1 * 0.5))
