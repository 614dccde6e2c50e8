"""The official initialisations, layer by layer, against their formulas (FIDELITY.md D3, D4, D14).

Fans are written out here from the official kernel shapes [kh, kw, in, out] (per group for grouped convolutions;
fc_1 a g x g VALID convolution, fc_2 a 1x1 one), not taken from the code under test:

- slim's default ``xavier_initializer``: U(+-sqrt(6 / (fan_in + fan_out))), std sqrt(2 / (fan_in + fan_out));
- TF 1.x ``variance_scaling_initializer(factor=2, mode='FAN_AVG')``: truncated_normal(stddev=sqrt(1.3 * 2 / n)),
  n = (fan_in + fan_out) / 2, cut at 2 stddev, so the weights' std is 0.8796 x that stddev.
"""

from __future__ import annotations

import math

import pytest
import torch

from spotart.models import AutoEncoder, Discriminator, RepairNetwork
from spotart.models.discriminator import architecture_options

TRUNCATED_FRACTION = 0.8796256610342398  # std of N(0, 1) restricted to [-2, 2]


def _glorot_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


def _scaling_stddev(fan_in: int, fan_out: int) -> float:
    return math.sqrt(1.3 * 2.0 / ((fan_in + fan_out) / 2.0))


def _check_moments(weight: torch.Tensor, std: float, name: str) -> None:
    values = weight.detach().double().flatten()
    count = values.numel()
    # sampling errors: the mean's is std/sqrt(n); the std's is below 0.71 std/sqrt(n) for these distributions
    assert abs(values.mean().item()) < 5 * std / math.sqrt(count), name
    assert values.std().item() == pytest.approx(std, rel=max(0.01, 4 * 0.71 / math.sqrt(count))), name


@pytest.fixture(scope="module")
def official_discriminator() -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(32, init="official", padding="tf_same", fc1_bn_scale=False)


def test_discriminator_official_weights_are_glorot_uniform_with_tf_fans(official_discriminator):
    disc, grid = official_discriminator, 2  # 32 px: conv5 is 2x2, so fc_1 is a 2x2 VALID convolution officially
    fans = {  # official kernel shapes (AlexNet.py:56-85, layers.py:60-72)
        "trunk.conv1": (11 * 11 * 3, 11 * 11 * 96),
        "trunk.conv2": (5 * 5 * 48, 5 * 5 * 128),  # 2 groups
        "trunk.conv3": (3 * 3 * 256, 3 * 3 * 384),
        "trunk.conv4": (3 * 3 * 192, 3 * 3 * 192),  # 2 groups
        "trunk.conv5": (3 * 3 * 192, 3 * 3 * 128),  # 2 groups
        "mask_head": (3 * 3 * 256, 3 * 3 * 1),
        "class_head.1": (grid * grid * 256, grid * grid * 4096),  # fc_1
        "class_head.5": (1 * 1 * 4096, 1 * 1 * 2),  # fc_2
    }
    modules = dict(disc.named_modules())
    for name, (fan_in, fan_out) in fans.items():
        weight = modules[name].weight
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert weight.abs().max().item() <= bound, name
        assert weight.abs().max().item() > 0.99 * bound, name  # uniform: the samples reach the bound
        _check_moments(weight, _glorot_std(fan_in, fan_out), name)


def test_fidelity_table_values_at_96_px():
    """The per-layer stds FIDELITY.md D4 tabulates (96 px), from the same formula."""
    assert _glorot_std(363, 11616) == pytest.approx(0.0129, abs=5e-5)  # conv1
    assert _glorot_std(9216, 36 * 4096) == pytest.approx(0.0036, abs=5e-5)  # fc_1


def test_discriminator_official_biases_are_0_1_where_the_official_code_has_biases(official_discriminator):
    disc = official_discriminator
    with_bias = ["trunk.conv1", "trunk.conv2", "trunk.conv3", "trunk.conv4", "mask_head", "class_head.5"]
    modules = dict(disc.named_modules())
    for name in with_bias:
        assert torch.equal(modules[name].bias, torch.full_like(modules[name].bias, 0.1)), name
    # conv5 and fc_1 are followed by BatchNorm and have no bias; the BatchNorms' shifts start at 0 and neither has a
    # learned scale (slim's batch_norm scale=False)
    assert modules["trunk.conv5"].bias is None and modules["class_head.1"].bias is None
    assert torch.equal(disc.trunk.bn5.bias, torch.zeros(256))
    assert torch.equal(disc.class_head[2].bias, torch.zeros(4096))
    assert not any(name.endswith("weight") for name, _ in disc.class_head[2].named_parameters())


def test_default_init_is_pytorchs_and_keeps_fc1s_scale():
    torch.manual_seed(0)
    disc = Discriminator(32)
    conv1 = disc.trunk.conv1  # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)), fan_in = 363
    assert conv1.weight.abs().max().item() <= 1 / math.sqrt(363)
    assert not torch.allclose(conv1.bias, torch.full_like(conv1.bias, 0.1))
    assert disc.class_head[2].weight is not None  # BatchNorm1d with a learned scale
    assert architecture_options({}) == {"padding": "symmetric", "fc1_bn_scale": True}  # runs from before the keys


@pytest.mark.parametrize("channels_index", [0, 4])  # the 512- and the 32-channel block
def test_repair_official_init_is_tf_variance_scaling_on_both_convs(channels_index):
    torch.manual_seed(0)
    block = RepairNetwork(init="official").blocks[channels_index]
    channels = (512, 256, 128, 64, 32)[channels_index]
    first, last = block.body[0], block.body[-1]
    for conv, (fan_in, fan_out) in ((first, (9 * (channels + 1), 9 * channels)), (last, (9 * channels, 9 * channels))):
        stddev = _scaling_stddev(fan_in, fan_out)
        assert conv.weight.abs().max().item() <= 2 * stddev  # truncated at two standard deviations
        _check_moments(conv.weight, stddev * TRUNCATED_FRACTION, f"{channels} {conv}")
    assert first.bias is None  # followed by BatchNorm
    assert torch.equal(last.bias, torch.zeros(channels))  # slim's default biases_initializer


def test_fidelity_table_values_of_the_repair_init():
    """FIDELITY.md D3: about 0.0208 for both convs of the 512-channel block."""
    assert _scaling_stddev(9 * 513, 9 * 512) * TRUNCATED_FRACTION == pytest.approx(0.0208, abs=1e-4)
    assert _scaling_stddev(9 * 512, 9 * 512) * TRUNCATED_FRACTION == pytest.approx(0.0208, abs=1e-4)


def test_identity_repair_init_is_unchanged():
    block = RepairNetwork().blocks[0]  # default: identity
    assert torch.count_nonzero(block.body[-1].weight) == 0 and torch.count_nonzero(block.body[-1].bias) == 0


def test_autoencoder_official_init_is_tf_variance_scaling_everywhere():
    torch.manual_seed(0)
    ae = AutoEncoder(init="official")
    shapes = [(ae.encoder.layers[0][0], (3 * 3 * 3, 3 * 3 * 32))]  # conv_0 3x3, then 2x2/s2 (AutoEncoder.py:50-54)
    widths = (32, 64, 128, 256, 512)
    shapes += [(ae.encoder.layers[i + 1][0], (2 * 2 * widths[i], 2 * 2 * widths[i + 1])) for i in range(4)]
    decoder_widths = (512, 256, 128, 64, 32)
    shapes += [(ae.decoder.stages[i].block[0], (9 * decoder_widths[i], 9 * decoder_widths[i + 1])) for i in range(4)]
    shapes.append((ae.decoder.to_rgb, (9 * 32, 9 * 3)))
    for conv, (fan_in, fan_out) in shapes:
        stddev = _scaling_stddev(fan_in, fan_out)
        assert conv.weight.abs().max().item() <= 2 * stddev
        _check_moments(conv.weight, stddev * TRUNCATED_FRACTION, str(conv))
    assert torch.equal(ae.decoder.to_rgb.bias, torch.zeros(3))


def test_unknown_init_names_are_refused():
    with pytest.raises(ValueError, match="unknown discriminator init"):
        Discriminator(32, init="glorot")
    with pytest.raises(ValueError, match="unknown repair init"):
        RepairNetwork(init="zeros")
    with pytest.raises(ValueError, match="unknown autoencoder init"):
        AutoEncoder(init="he")
