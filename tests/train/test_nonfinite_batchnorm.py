"""A step the NaN guard skips leaves no trace in BatchNorm's running statistics (immediate and deferred guards):
otherwise one NaN batch would make every later eval-mode pass (kNN monitor, probes, export) NaN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spotart.config import AEConfig, SpotConfig
from spotart.evaluation.classifier import TrunkClassifier, classifier_step
from spotart.models import AutoEncoder
from spotart.models.discriminator import Discriminator
from spotart.models.rotation_head import RotNet
from spotart.train.device import Runtime
from spotart.train.nonfinite import BatchNormSnapshot, NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.rotnet import rotnet_step
from spotart.train.stage1 import autoencoder_step
from spotart.train.stage2 import build_models, spot_step

from ..helpers import torch_threads

CPU = Runtime(torch.device("cpu"), None, False)
GUARDS = pytest.mark.parametrize("deferred", [False, True], ids=["immediate", "deferred"])


def running_stats(*modules: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{index}.{name}": buffer.clone() for index, module in enumerate(modules)
            for name, buffer in module.named_buffers() if "running" in name or "num_batches" in name}


def assert_same(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> None:
    assert before.keys() == after.keys() and before
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert not changed, f"running statistics changed by a skipped step: {changed[:5]}"


def nan_images(batch: int = 4, size: int = 32) -> torch.Tensor:
    return torch.full((batch, 3, size, size), float("nan"))


def test_snapshot_collects_every_batchnorm_once_and_restores_only_where_flagged():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.BatchNorm1d(2, track_running_stats=False))
    snapshot = BatchNormSnapshot(net, net[1])  # the same BatchNorm reached twice is one set of buffers
    assert len(snapshot.buffers) == 3  # running_mean, running_var, num_batches_tracked of the tracked one
    snapshot.save()
    net[1].running_mean.fill_(float("nan"))
    snapshot.restore(where=torch.tensor(0.0))  # the flag says "keep": nothing is put back
    assert torch.isnan(net[1].running_mean).all()
    snapshot.restore(where=torch.tensor(1.0))
    assert torch.equal(net[1].running_mean, torch.zeros(4))


@GUARDS
def test_stage1_skipped_step_keeps_running_stats_and_a_finite_one_moves_them(deferred):
    model = AutoEncoder().train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    guard = NonFiniteGuard(patience=5, deferred=deferred)
    with torch_threads(1):
        before = running_stats(model)
        autoencoder_step(model, nan_images(), optimizer, CPU, 30.0, guard, step=0)
        guard.check(1)
        assert_same(before, running_stats(model))
        autoencoder_step(model, torch.rand(4, 3, 32, 32) * 2 - 1, optimizer, CPU, 30.0, guard, step=1)
    moved = running_stats(model)
    assert any(not torch.equal(before[name], moved[name]) for name in before)  # the guard is not a freeze
    assert all(torch.isfinite(value.float()).all() for value in moved.values())


@GUARDS
def test_stage2_skipped_step_keeps_c_and_r_running_stats(deferred):
    cfg = SpotConfig(image_size=32, precision="fp32", warmup_steps=0)
    with torch_threads(1):
        models = build_models(cfg, AutoEncoder(), CPU)
        models.generator.train()
        models.discriminator.train()
        guard = NonFiniteGuard(patience=5, deferred=deferred)
        masks = torch.Generator().manual_seed(0)
        before = running_stats(models.discriminator, models.generator)
        result = spot_step(models, nan_images(), cfg, CPU, 0, masks, guard)
        guard.check(1)
    assert result.updated_repair  # R's BatchNorms ran in training mode too
    assert any(".repair." in name or name.startswith("1.") for name in before)
    assert_same(before, running_stats(models.discriminator, models.generator))


@GUARDS
def test_rotnet_and_classifier_skipped_steps_keep_running_stats(deferred):
    cfg = AEConfig(precision="fp32")
    with torch_threads(1):
        rotnet = RotNet(image_size=32).train()
        guard = NonFiniteGuard(patience=5, deferred=deferred)
        before = running_stats(rotnet)
        rotnet_step(rotnet, rotnet, nan_images(), make_adam(rotnet, cfg), CPU, guard, step=0)
        assert_same(before, running_stats(rotnet))

        classifier = TrunkClassifier(Discriminator(image_size=32).trunk, 32, num_classes=3).train()
        before = running_stats(classifier)
        metrics = classifier_step(classifier, nan_images(), torch.tensor([0, 1, 2, 0]), make_adam(classifier, cfg),
                                  CPU, guard, step=1)
        guard.check(2)
    assert_same(before, running_stats(classifier))
    assert torch.isnan(metrics["loss"]) and guard.total == 2  # the step's metrics say what happened
