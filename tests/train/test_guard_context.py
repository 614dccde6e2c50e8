"""The NaN guard as one context per step (``with guard.step(step, *modules) as verdict``): in each of the four step
functions (stage 1, stage 2, RotNet, the classifier), a step with a NaN loss leaves BatchNorm's running statistics,
every parameter and every optimiser state exactly as they were, and a finite step changes all three."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from spotart.config import AEConfig, SpotConfig
from spotart.evaluation.classifier import TrunkClassifier, classifier_step
from spotart.models import AutoEncoder
from spotart.models.discriminator import Discriminator
from spotart.models.rotation_head import RotNet
from spotart.train.device import Runtime
from spotart.train.nonfinite import UNGUARDED, NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.rotnet import rotnet_step
from spotart.train.stage1 import autoencoder_step
from spotart.train.stage2 import build_models, spot_step

from ..helpers import torch_threads

CPU = Runtime(torch.device("cpu"), None, False)
GUARDS = pytest.mark.parametrize("deferred", [False, True], ids=["immediate", "deferred"])
SIZE = 32


@dataclass
class Trainee:
    """A step function on its modules and optimisers: ``step(images, index)`` runs one guarded step."""

    modules: tuple[nn.Module, ...]
    optimizers: tuple[torch.optim.Optimizer, ...]
    step: Callable[[torch.Tensor, int], object]


def _stage1(guard: NonFiniteGuard) -> Trainee:
    model = AutoEncoder().train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    return Trainee((model,), (optimizer,),
                   lambda images, index: autoencoder_step(model, images, optimizer, CPU, 30.0, guard, index))


def _stage2(guard: NonFiniteGuard) -> Trainee:
    cfg = SpotConfig(image_size=SIZE, precision="fp32", warmup_steps=0, repair_every=1)
    models = build_models(cfg, AutoEncoder(), CPU)
    models.generator.train()
    models.discriminator.train()
    masks = torch.Generator().manual_seed(0)

    def step(images: torch.Tensor, index: int) -> object:
        result = spot_step(models, images, cfg, CPU, index, masks, guard)
        assert result.updated_repair  # C's and R's updates both guarded
        return result

    return Trainee((models.discriminator, models.generator), (models.opt_c, models.opt_r), step)


def _rotnet(guard: NonFiniteGuard) -> Trainee:
    model = RotNet(SIZE, hidden=16).train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    return Trainee((model,), (optimizer,),
                   lambda images, index: rotnet_step(model, model, images, optimizer, CPU, guard, index))


def _classifier(guard: NonFiniteGuard) -> Trainee:
    model = TrunkClassifier(Discriminator(image_size=SIZE).trunk, SIZE, num_classes=3, hidden=16).train()
    optimizer = make_adam(model, AEConfig(precision="fp32"))
    labels = torch.tensor([0, 1, 2, 0])
    return Trainee((model,), (optimizer,),
                   lambda images, index: classifier_step(model, images, labels, optimizer, CPU, guard, index))


STAGES = pytest.mark.parametrize("build", [_stage1, _stage2, _rotnet, _classifier],
                                 ids=["stage1", "stage2", "rotnet", "classifier"])


def _statistics(modules: tuple[nn.Module, ...]) -> dict[str, torch.Tensor]:
    return {f"{index}.{name}": buffer.clone() for index, module in enumerate(modules)
            for name, buffer in module.named_buffers() if "running" in name or "num_batches" in name}


def _parameters(modules: tuple[nn.Module, ...]) -> dict[str, torch.Tensor]:
    return {f"{index}.{name}": param.detach().clone() for index, module in enumerate(modules)
            for name, param in module.named_parameters()}


def _optimiser_states(optimizers: tuple[torch.optim.Optimizer, ...]) -> list[dict]:
    return [copy.deepcopy(optimizer.state_dict()["state"]) for optimizer in optimizers]


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    assert before.keys() == after.keys() and before
    return [name for name in before if not torch.equal(before[name], after[name])]


def _states_changed(before: list[dict], after: list[dict]) -> bool:
    assert all(before), "the finite first step gave every optimiser its state"
    return any(not torch.equal(value, after[index][param][key]) for index, state in enumerate(before)
               for param, s in state.items() for key, value in s.items())


def _images(seed: int) -> torch.Tensor:
    return torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@STAGES
@GUARDS
def test_a_nan_step_leaves_no_trace_and_a_finite_one_moves_everything(build, deferred):
    guard = NonFiniteGuard(patience=5, deferred=deferred)
    with torch_threads(1):
        torch.manual_seed(0)
        trainee = build(guard)
        trainee.step(_images(0), 0)  # a finite step first: every optimiser has moments and a step count
        guard.check(1)
        statistics, params = _statistics(trainee.modules), _parameters(trainee.modules)
        states = _optimiser_states(trainee.optimizers)

        trainee.step(torch.full((4, 3, SIZE, SIZE), float("nan")), 1)
        guard.check(2)
        assert guard.total == 1 and guard.in_a_row == 1
        assert not _changed(statistics, _statistics(trainee.modules)), "BatchNorm statistics restored exactly"
        assert not _changed(params, _parameters(trainee.modules)), "no parameter moved"
        assert not _states_changed(states, _optimiser_states(trainee.optimizers)), "no moment or step count moved"

        trainee.step(_images(1), 2)
        guard.check(3)
    assert guard.total == 1 and guard.in_a_row == 0
    assert _changed(statistics, _statistics(trainee.modules)), "a finite step moves the statistics"
    assert _changed(params, _parameters(trainee.modules)), "a finite step moves the parameters"
    assert _states_changed(states, _optimiser_states(trainee.optimizers)), "a finite step moves the optimisers"


def test_the_default_guard_admits_every_update():
    """``UNGUARDED``, the step functions' default: the same path, with no check; a NaN step is applied."""
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with UNGUARDED.step(0, net) as verdict:
        loss = net(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])).sum()
        assert verdict.admit({"loss": loss})
        loss.backward()
        verdict.update(optimizer)
    assert torch.isnan(net[0].weight).any() and torch.isnan(net[1].running_mean).any()
    assert UNGUARDED.total == 0 and UNGUARDED.in_a_row == 0


@GUARDS
def test_a_step_that_raises_puts_the_statistics_back(deferred):
    """Giving up after ``patience`` steps in a row (immediate guard), or any other error inside the step."""
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    guard = NonFiniteGuard(patience=1, deferred=deferred)
    before = _statistics((net,))
    with pytest.raises(FloatingPointError if not deferred else RuntimeError):
        with guard.step(0, net, lambda x: x) as verdict:  # anything but a module has no statistics to save
            loss = net(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])).sum()
            verdict.admit({"loss": loss})
            raise RuntimeError("after admit")
    assert not _changed(before, _statistics((net,)))
