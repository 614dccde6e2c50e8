"""The damage (fill rule) and the resizes alone, against ``ops.npz`` and the stage-2 step's draws."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spotart.models.autoencoder import tf_legacy_upsample2x, upsample2x
from spotart.models.damage import damage_features, fill_features, keep_from_uniform, upsample_mask

from .replay import fixture, nchw, nhwc


def test_fill_and_damage_are_tfs_to_fp32_rounding():
    ops = fixture("ops")
    features, keep = nchw(ops["damage/features"]), nchw(ops["damage/keep"])
    fill = nhwc(fill_features(features))
    damaged = nhwc(damage_features(features, keep))
    # a 3x3 mean of 9 (or fewer, at the border) fp32 values, summed in another order: a few ulps
    np.testing.assert_allclose(fill, ops["damage/avg"], rtol=4 * 2.0**-23 * 9, atol=0)
    np.testing.assert_allclose(damaged, ops["damage/output"], rtol=4 * 2.0**-23 * 9, atol=0)
    kept = ops["damage/keep"][..., 0] == 1
    assert np.array_equal(damaged[kept], ops["damage/features"][kept]), "kept cells pass through bit for bit"


def test_keep_rule_on_the_official_draw_gives_the_official_mask():
    step = fixture("stage2_step")
    uniform = torch.from_numpy(step["tower_0/pixel_dropout/random_uniform/RandomUniform:0"])
    keep = keep_from_uniform(uniform, 0.7).float().numpy()
    assert np.array_equal(keep, step["tower_0/pixel_dropout/Floor:0"])
    assert keep.sum() == 13  # the README's count of kept cells in this draw: the rule is not trivially all-ones


def test_tf_legacy_bilinear_is_bit_for_bit():
    ops = fixture("ops")
    for i in (1, 2):
        ours = nhwc(tf_legacy_upsample2x(nchw(ops[f"resize/bilinear_in_{i}"])))
        assert np.array_equal(ours, ops[f"resize/bilinear_out_{i}"]), f"input {i}"
        channels_last = nchw(ops[f"resize/bilinear_in_{i}"]).contiguous(memory_format=torch.channels_last)
        assert np.array_equal(nhwc(upsample2x(channels_last, "tf_legacy")), ops[f"resize/bilinear_out_{i}"])


def test_half_pixel_bilinear_is_another_image():
    """PyTorch's F.interpolate (spotart's default decoder convention) shifts by a quarter pixel: on these inputs it
    moves the output by a sizeable fraction of its range, which is why the official presets use tf_legacy."""
    ops = fixture("ops")
    ours = nhwc(F.interpolate(nchw(ops["resize/bilinear_in_1"]), scale_factor=2, mode="bilinear"))
    reference = ops["resize/bilinear_out_1"]
    assert np.abs(ours - reference).max() > 0.05 * np.abs(reference).max()


def test_mask_resizes_repeat_cells():
    ops = fixture("ops")
    mask = nchw(ops["resize/mask_in"])
    assert np.array_equal(nhwc(upsample_mask(mask, 8)), ops["resize/mask_x2"])
    assert np.array_equal(nhwc(upsample_mask(mask, 64)), ops["resize/mask_to_image"])
