"""The linear heads: they learn a separable problem, and candidates trained side by side equal separate runs."""

from __future__ import annotations

import torch

from spotart.evaluation.linear import LinearSettings, fit_linear_probe, standardise, train_linear_heads


def _blobs(n: int, dims: int = 64, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dims, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(n) % classes
    return (centres[labels] + torch.randn(n, dims, generator=gen)).half(), labels


def test_separable_features_give_near_100_percent():
    (x, y), (vx, vy) = _blobs(400), _blobs(200, seed=1)
    result = fit_linear_probe(x, y, vx, vy, 4)
    assert result.top1 >= 98.0 and result.train_top1 >= 98.0 and result.holdout_top1 == {}


def test_several_weight_decays_are_chosen_on_held_out_training_images():
    (x, y), (vx, vy) = _blobs(400), _blobs(200, seed=1)
    result = fit_linear_probe(x, y, vx, vy, 4, LinearSettings(weight_decays=(1e-4, 1e-2, 10.0)))
    assert set(result.holdout_top1) == {"0.0001", "0.01", "10"}
    assert result.weight_decay == max((1e-4, 1e-2, 10.0), key=lambda wd: result.holdout_top1[f"{wd:g}"])


def test_candidates_trained_together_match_separate_runs():
    x, y = _blobs(300)
    (xs,) = standardise(x)
    settings = LinearSettings(epochs=10)
    together = train_linear_heads(xs, y, 4, (0.0, 10.0), settings)
    weak = train_linear_heads(xs, y, 4, (0.0,), settings)
    strong = train_linear_heads(xs, y, 4, (10.0,), settings)
    assert torch.allclose(together.weight[:, :4], weak.weight, atol=1e-6)
    assert torch.allclose(together.weight[:, 4:], strong.weight, atol=1e-6)
    assert torch.allclose(together.bias[4:], strong.bias, atol=1e-6)
    assert (weak.weight - strong.weight).abs().max() > 1e-3  # the decay did act
