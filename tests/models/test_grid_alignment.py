"""Where each conv5 cell looks, measured from the gradient of the cell with respect to the input image.

A mask cell k covers pixels 16k..16k+15 (centre 16k + 7.5). The receptive field of a conv5 cell is 163 px wide, wider
than the images, so the test measures it on the same trunk with every convolution reduced to its centre tap (the
strided conv1 and the pools, whose padding is what decides where a cell sits, keep their full windows; a stride-1
convolution padded symmetrically does not move a centre). All weights are positive and small (LRN then stays
monotone), the trunk is in eval mode, and the input is a ramp along one axis: each max pool then routes the
gradient to the last (or, on a falling ramp, the first) valid element of its window, so the one pixel that
receives gradient is the field's far (near) edge inside the image. A field cut by the image border is extended to
the full width, measured where a field lies wholly inside the image.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from spotart.models.discriminator import PADDINGS, Trunk

SIZES = (32, 64, 96)
CONV1_STRIDE = 4
STRIP = 32  # the image's extent across the measured axis


def _centre_tap_trunk(padding: str) -> Trunk:
    trunk = Trunk(padding).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in (trunk.conv1, trunk.conv2, trunk.conv3, trunk.conv4, trunk.conv5):
            conv.weight.zero_()
            middle = conv.kernel_size[0] // 2
            conv.weight[:, :, middle, middle] = 1e-3 * (1.0 + torch.rand(conv.weight.shape[:2], generator=generator))
            if conv.bias is not None:
                conv.bias.zero_()
    return trunk


def _field_edges(trunk: Trunk, size: int, axis: int) -> list[tuple[int, int]]:
    """(first, last) pixel along ``axis`` (-1: columns, -2: rows) of each conv5 cell's field inside the image.

    The image is ``size`` px along ``axis`` and 32 px (the smallest supported size) across it, which keeps the test
    fast: the trunk pads each axis from that axis' own size, so the measured axis is padded as at size x size."""
    ramp = torch.linspace(0.0, 1.0, size)  # images in [0, 1]: every normalised pixel is positive
    shape = (2, 3, STRIP, size) if axis == -1 else (2, 3, size, STRIP)
    ramp = ramp.view(1, 1, 1, size) if axis == -1 else ramp.view(1, 1, size, 1)
    images = torch.cat([ramp, ramp.flip(axis)]).expand(shape).clone().requires_grad_(True)
    conv5 = trunk(images)  # (2, 256, g, 2) or (2, 256, 2, g)
    grid = conv5.shape[axis]
    edges = []
    for cell in range(grid):
        images.grad = None
        row, col = (0, cell) if axis == -1 else (cell, 0)
        conv5[:, :, row, col].sum().backward(retain_graph=True)
        across = (0, 1) if axis == -1 else (0, 2)  # sum over channels and the other axis: (size,)
        rising, falling = (images.grad[i].abs().sum(across) for i in range(2))
        last = int(rising.nonzero().max())  # the rising ramp's max pools pick the last valid element
        first = int(falling.nonzero().min())
        assert rising.count_nonzero() == 1 and falling.count_nonzero() == 1  # one path, as the method assumes
        edges.append((first, last))
    return edges


@lru_cache(maxsize=None)
def _full_width(padding: str, axis: int) -> int:
    """The field's width where it lies wholly inside the image (the middle cells of 96 px)."""
    return max(last - first for first, last in _field_edges(_centre_tap_trunk(padding), 96, axis))


def _centres(padding: str, size: int, axis: int = -1) -> list[float]:
    """Each cell's receptive-field centre in pixels (pixel i's centre at i)."""
    trunk = _centre_tap_trunk(padding)
    width = _full_width(padding, axis)
    centres = []
    for first, last in _field_edges(trunk, size, axis):
        if last - first == width:
            centres.append((first + last) / 2)
            continue
        left_margin, right_margin = first, size - 1 - last
        # a field cut by the border ends within one conv1 stride of it, and only one side can be cut here
        assert min(left_margin, right_margin) < CONV1_STRIDE <= max(left_margin, right_margin)
        centres.append(last - width / 2 if left_margin < right_margin else first + width / 2)
    return centres


def _mask_cell_centres(size: int) -> list[float]:
    return [16 * k + 7.5 for k in range(size // 16)]


@pytest.mark.parametrize("size", SIZES)
def test_centred_grid_puts_each_conv5_cell_within_a_pixel_of_its_mask_cell(size):
    for axis in (-1, -2):
        centres = _centres("centred", size, axis)
        offsets = [c - m for c, m in zip(centres, _mask_cell_centres(size))]
        assert len(centres) == size // 16
        assert max(abs(o) for o in offsets) <= 1.0, offsets
        assert offsets == [0.5] * (size // 16)  # integer paddings cannot reach 7.5 exactly: 8


@pytest.mark.parametrize("size", SIZES)
def test_the_other_paddings_sit_off_the_mask_cells_by_what_fidelity_md_says(size):
    """D8: ours (symmetric) 7.5 px before the mask cell's centre, the official TF SAME 6.5 px after."""
    for padding, offset in (("symmetric", -7.5), ("tf_same", 6.5)):
        for axis in (-1, -2):
            offsets = [c - m for c, m in zip(_centres(padding, size, axis), _mask_cell_centres(size))]
            assert offsets == [offset] * (size // 16), (padding, offsets)


def test_the_measurement_sees_a_one_pixel_shift():
    """The method is not blind: with conv1 padded one pixel less, every field inside the image moves by one pixel."""
    trunk = _centre_tap_trunk("symmetric")
    before = _field_edges(trunk, 64, -1)
    trunk.conv1.padding = (4, 4)  # conv1's taps now read one pixel further right (same output size)
    after = _field_edges(trunk, 64, -1)
    inside = [(old, new) for old, new in zip(before, after) if old[0] >= CONV1_STRIDE and new[1] < 64 - CONV1_STRIDE]
    assert inside
    assert all(new[0] - old[0] == 1 and new[1] - old[1] == 1 for old, new in inside)


def test_every_padding_keeps_conv5_on_the_mask_grid():
    for padding in PADDINGS:
        for size in SIZES:
            assert Trunk(padding)(torch.zeros(1, 3, size, size)).shape[-2:] == (size // 16, size // 16)
