"""``models/gemm_conv.py``: convolution passes as matrix products, the same values as oneDNN's up to rounding."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spotart.config import ConfigError, build_config
from spotart.models import Discriminator
from spotart.models.gemm_conv import (
    GemmConv2d,
    GemmPasses,
    auto_passes,
    gemm_conv2d,
    use_gemm_weight_grads,
)
from spotart.train.device import resolve_gemm_weight_grads

# (input shape, weight shape, stride, padding, groups): R's and C's kinds of layer, small
CASES = [((4, 13, 4, 4), (12, 13, 3, 3), 1, 1, 1), ((4, 8, 8, 8), (16, 4, 5, 5), 1, 2, 2),
         ((2, 3, 23, 23), (8, 3, 11, 11), 4, 0, 1), ((4, 12, 6, 6), (12, 6, 3, 3), 1, 1, 2)]
ALL_PASSES = [GemmPasses(forward=True), GemmPasses(input_grad=True), GemmPasses(weight_grad=True),
              GemmPasses(True, True, True)]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@pytest.mark.parametrize("case,channels_last,with_bias", list(itertools.product(CASES, (False, True), (False, True))))
def test_every_pass_matches_conv2d_in_fp32(case, channels_last, with_bias):
    x_shape, w_shape, stride, padding, groups = case
    torch.manual_seed(0)
    x = torch.randn(x_shape, requires_grad=True)
    weight = torch.randn(w_shape, requires_grad=True)
    bias = torch.randn(w_shape[0], requires_grad=True) if with_bias else None
    inputs = [x, weight] + ([bias] if with_bias else [])
    x_in = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    reference = F.conv2d(x_in, weight, bias, stride, padding, 1, groups)
    grad_out = torch.randn_like(reference)
    reference_grads = torch.autograd.grad(reference, inputs, grad_out)
    for passes in ALL_PASSES:
        out = gemm_conv2d(x_in, weight, bias, (stride, stride), (padding, padding), groups, passes)
        grads = torch.autograd.grad(out, inputs, grad_out)
        assert _relative(out, reference) < 1e-5, passes
        for got, expected in zip(grads, reference_grads):
            assert got.shape == expected.shape
            assert _relative(got, expected) < 1e-5, passes
        # the layout oneDNN would give: channels_last in, channels_last out
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert out.is_contiguous() == (not channels_last)


def test_under_bf16_autocast_it_casts_as_conv2d_does_and_rounds_like_it():
    torch.manual_seed(0)
    x = torch.randn(8, 64, 4, 4, requires_grad=True)
    weight = torch.randn(32, 64, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = F.conv2d(x, weight, None, 1, 1)
        out = gemm_conv2d(x, weight, None, (1, 1), (1, 1), 1, GemmPasses(True, True, True))
    assert out.dtype == reference.dtype == torch.bfloat16
    grad_out = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, [x, weight], grad_out)
    got = torch.autograd.grad(out, [x, weight], grad_out)
    assert [g.dtype for g in got] == [torch.float32, torch.float32]  # back through the casts to the fp32 leaves
    assert _relative(out, reference) < 8e-3  # one bf16 rounding (2^-7) at most
    for a, b in zip(got, expected):
        assert _relative(a, b) < 8e-3


def test_the_policy_picks_the_weight_gradients_of_small_maps_only():
    assert auto_passes((4, 4)) == auto_passes((6, 6)) == GemmPasses(weight_grad=True)
    assert auto_passes((4, 4)) == GemmPasses(weight_grad=True)  # R's forward stays oneDNN's (fidelity)
    assert auto_passes((8, 8)) == auto_passes((16, 16)) == GemmPasses()
    conv = GemmConv2d(8, 8, 3, padding=1)
    assert conv.passes_for(torch.zeros(1, 8, 4, 4)) == GemmPasses(weight_grad=True)
    assert conv.passes_for(torch.zeros(1, 8, 8, 8)) == GemmPasses()
    fixed = GemmConv2d(8, 8, 3, padding=1, passes=GemmPasses(forward=True))
    assert fixed.passes_for(torch.zeros(1, 8, 8, 8)) == GemmPasses(forward=True)
    with pytest.raises(ValueError, match="zero padding given as numbers"):
        GemmConv2d(8, 8, 3, padding="same")


def test_swapping_keeps_the_parameters_and_state_dict_and_skips_frozen_convolutions():
    torch.manual_seed(0)
    disc = Discriminator(64, init="official", padding="tf_same")
    frozen = nn.Sequential(nn.Conv2d(3, 4, 3)).requires_grad_(False)
    disc.frozen_part = frozen
    before = {name: param for name, param in disc.named_parameters()}
    keys = list(disc.state_dict())
    reference = copy.deepcopy(disc)
    assert use_gemm_weight_grads(disc) == 6  # conv1..conv5 and the mask head
    assert type(disc.frozen_part[0]) is nn.Conv2d
    assert isinstance(disc.trunk.conv3, GemmConv2d) and disc.trunk.conv3.passes is None
    assert {name: param for name, param in disc.named_parameters()} == before  # the same Parameter objects
    assert list(disc.state_dict()) == keys
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    losses = []
    for net in (disc, reference):
        torch.manual_seed(5)  # the class head's dropout
        out = net(x)
        losses.append(out.class_logits[:, 1].sum() + out.mask_logits.square().sum())
        losses[-1].backward()
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-6)
    for (name, a), (_, b) in zip(disc.named_parameters(), reference.named_parameters()):
        if b.grad is not None:
            assert _relative(a.grad, b.grad) < 1e-5, name


def test_the_config_key_is_off_by_default_and_takes_small_maps():
    assert build_config("train-spot", set_pairs=["data=x"]).gemm_weight_grads == "off"
    chosen = build_config("train-ae", set_pairs=["data=x", "gemm_weight_grads=small_maps"])
    assert chosen.gemm_weight_grads == "small_maps"
    with pytest.raises(ConfigError, match="gemm_weight_grads"):
        build_config("train-spot", set_pairs=["data=x", "gemm_weight_grads=auto"])
    assert resolve_gemm_weight_grads("small_maps", torch.device("cpu"))
    assert not resolve_gemm_weight_grads("small_maps", torch.device("cuda"))
    assert not resolve_gemm_weight_grads("off", torch.device("cpu"))
