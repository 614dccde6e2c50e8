"""A convolution whose passes can run as one matrix product each (im2col), for the layers where oneDNN's direct
kernels leave the CPU's matrix units idle.

Why: on AMX CPUs, oneDNN's weight-gradient kernels for small feature maps with many channels (the repair network's
first block at 4 x 4 and 6 x 6 with 513 and 512 channels, the discriminator's conv3 to conv5) run at 8-20% of the
bf16 matrix ceiling (``benchmarks/roofline.py``). The same arithmetic as im2col and one matrix product of a good
shape per group runs near it; the unfolded copy is small at these sizes (a 4 x 4 map grows 9x to a few MB).

Each pass (forward, input gradient, weight gradient) is chosen separately by a ``GemmPasses``: a pass left out runs
oneDNN's kernel, through ``aten.convolution_backward`` for the gradients. Under autocast the inputs are cast as
autocast casts a convolution (to its dtype, weights included), so the arithmetic is the same as ``F.conv2d``'s up to
the order of the sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GemmPasses:
    """Which passes run as a matrix product; the rest run oneDNN's convolution kernels."""

    forward: bool = False
    input_grad: bool = False
    weight_grad: bool = False

    @property
    def any(self) -> bool:
        return self.forward or self.input_grad or self.weight_grad


def output_size(x_shape: torch.Size, weight_shape: torch.Size, stride: tuple[int, int],
                padding: tuple[int, int]) -> tuple[int, int]:
    return tuple((x_shape[2 + i] + 2 * padding[i] - weight_shape[2 + i]) // stride[i] + 1 for i in range(2))


def columns(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int]) -> torch.Tensor:
    """im2col in channels-last order: (N Ho Wo, kh kw C), one copy from strided views (``F.unfold`` is 20-50x
    slower in bf16 on the CPU). Rows are output pixels in (n, y, x) order, columns (ky, kx, c)."""
    padded = F.pad(x, (padding[1], padding[1], padding[0], padding[0])) if any(padding) else x
    windows = padded.permute(0, 2, 3, 1).unfold(1, kernel[0], stride[0]).unfold(2, kernel[1], stride[1])
    n, out_h, out_w, channels = windows.shape[:4]  # windows: (N, Ho, Wo, C, kh, kw)
    return windows.permute(0, 1, 2, 4, 5, 3).reshape(n * out_h * out_w, kernel[0] * kernel[1] * channels)


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(O, kh kw C): the weight in the columns' order (a view for a channels_last weight)."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def pixel_rows(tensor: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) as (N H W, C) (a view for a channels_last tensor)."""
    return tensor.permute(0, 2, 3, 1).reshape(-1, tensor.shape[1])


def _from_pixel_rows(rows: torch.Tensor, like: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N H W, C) back to (N, C, H, W), channels_last when ``like`` is, contiguous otherwise."""
    out = rows.view(like.shape[0], size[0], size[1], rows.shape[1]).permute(0, 3, 1, 2)
    channels_last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return out if channels_last else out.contiguous()


def _group(tensor: torch.Tensor, index: int, groups: int, dim: int = 1) -> torch.Tensor:
    size = tensor.shape[dim] // groups
    return tensor.narrow(dim, index * size, size)


def gemm_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], groups: int) -> torch.Tensor:
    """The convolution as im2col and one matrix product per group: (N Ho Wo, kh kw C/g) @ (kh kw C/g, O/g)."""
    out_size = output_size(x.shape, weight.shape, stride, padding)
    kernel = tuple(weight.shape[2:])
    rows = torch.cat([columns(_group(x, g, groups), kernel, stride, padding)
                      @ weight_matrix(_group(weight, g, groups, 0)).T for g in range(groups)], dim=1)
    if bias is not None:
        rows = rows + bias
    return _from_pixel_rows(rows, x, out_size)


def gemm_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, weight_shape: torch.Size, stride: tuple[int, int],
                     padding: tuple[int, int], groups: int) -> torch.Tensor:
    """dL/dweight as one matrix product per group, the batch and the pixels folded into its inner dimension:
    (O/g, N Ho Wo) @ (N Ho Wo, kh kw C/g)."""
    out_ch, in_per_group, kh, kw = weight_shape
    grad_rows = pixel_rows(grad_out)
    parts = [(_group(grad_rows, g, groups).T @ columns(_group(x, g, groups), (kh, kw), stride, padding))
             .view(out_ch // groups, kh, kw, in_per_group) for g in range(groups)]
    return torch.cat(parts).permute(0, 3, 1, 2)


def gemm_input_grad(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int],
                    padding: tuple[int, int], groups: int) -> torch.Tensor:
    """dL/dx as one matrix product per group (N Ho Wo, O/g) @ (O/g, kh kw C/g), then col2im: each kernel offset's
    columns added into the (padded) input grid, in fp32 as oneDNN accumulates, rounded once at the end."""
    _, in_per_group, kh, kw = weight.shape
    n, _, height, width = x.shape
    out_h, out_w = grad_out.shape[2:]
    grad_rows = pixel_rows(grad_out)
    padded = torch.zeros(n, height + 2 * padding[0], width + 2 * padding[1], x.shape[1], dtype=torch.float32,
                         device=x.device)
    for g in range(groups):
        grad_cols = (_group(grad_rows, g, groups) @ weight_matrix(_group(weight, g, groups, 0)))
        grad_cols = grad_cols.float().view(n, out_h, out_w, kh, kw, in_per_group)
        target = _group(padded, g, groups, dim=3)
        for ky in range(kh):
            for kx in range(kw):
                target[:, ky:ky + stride[0] * (out_h - 1) + 1:stride[0],
                       kx:kx + stride[1] * (out_w - 1) + 1:stride[1]] += grad_cols[:, :, :, ky, kx]
    grad = padded[:, padding[0]:padding[0] + height, padding[1]:padding[1] + width].to(x.dtype)
    return _from_pixel_rows(grad.reshape(-1, x.shape[1]), x, (height, width))


def dnn_grads(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, has_bias: bool,
              stride: tuple[int, int], padding: tuple[int, int], groups: int, mask: list[bool]):
    """oneDNN's gradients (input, weight, bias), those not in ``mask`` as None."""
    return torch.ops.aten.convolution_backward(grad_out, x, weight, [weight.shape[0]] if has_bias else None,
                                               list(stride), list(padding), [1, 1], False, [0, 0], groups, mask)


class _GemmConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, groups, passes):  # noqa: D102 - autograd protocol
        if passes.forward:
            out = gemm_forward(x, weight, bias, stride, padding, groups)
        else:
            out = F.conv2d(x, weight, bias, stride, padding, 1, groups)
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, groups, passes, bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102 - autograd protocol
        x, weight = ctx.saved_tensors
        stride, padding, groups, passes, has_bias = ctx.conf
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_input = grad_weight = grad_bias = None
        mask = [need_input and not passes.input_grad, need_weight and not passes.weight_grad, need_bias and has_bias]
        if any(mask):
            grad_input, grad_weight, grad_bias = dnn_grads(grad_out, x, weight, has_bias, stride, padding, groups,
                                                           mask)
        if need_weight and passes.weight_grad:
            grad_weight = gemm_weight_grad(grad_out, x, weight.shape, stride, padding, groups)
        if need_input and passes.input_grad:
            grad_input = gemm_input_grad(grad_out, x, weight, stride, padding, groups)
        return grad_input, grad_weight, grad_bias, None, None, None, None


def gemm_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                padding: tuple[int, int], groups: int, passes: GemmPasses) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, 1, groups)`` with the chosen passes as matrix products."""
    if not passes.any:
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)
    device = x.device.type
    if torch.is_autocast_enabled(device):  # cast as autocast casts a convolution; the casts stay differentiable
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    with torch.autocast(device, enabled=False):
        return _GemmConv2d.apply(x, weight, bias, stride, padding, groups, passes)


# The policy, from benchmarks/gemm_conv_speed.py on an AMX Xeon at the stage-2 shapes of 64 and 96 px (RESULTS.md,
# issue 25). Weight gradients: one matrix product beats oneDNN wherever the output map is 6 x 6 or smaller (R's
# first block 2.8-4.6x, C's conv3-conv5 1.2-3x); at 8 x 8 and above, and at C's conv1 at 96 px, oneDNN is level or
# ahead. Input gradients: mixed between the two sizes, so oneDNN's everywhere. Forward: R's first convolution (513
# input channels) would gain 1.5-2.5x, but a forward computed in another order moves R's gradients against the
# authors' TF step by 4e-3 of their largest value (tests/fidelity: LeakyReLU and max-pool inputs near a tie flip),
# beyond the tolerance that TF's own run-to-run spread sets; weight gradients feed only the update and pass.
SMALL_MAP_PIXELS = 36


def auto_passes(out_size: tuple[int, int]) -> GemmPasses:
    return GemmPasses(weight_grad=out_size[0] * out_size[1] <= SMALL_MAP_PIXELS)


class GemmConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state dict) whose passes run as matrix products where ``auto_passes``
    says so (on the CPU), or as ``passes`` fixes them (tests, benchmarks)."""

    def __init__(self, *args, passes: GemmPasses | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or self.dilation != (1, 1) or isinstance(self.padding, str):
            raise ValueError("GemmConv2d supports zero padding given as numbers and no dilation")
        self.passes = passes  # None: the policy above, per call

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, passes: GemmPasses | None = None) -> GemmConv2d:
        """A GemmConv2d holding ``conv``'s own parameters (the same Parameter objects: optimizers, EMA and
        checkpoints see no difference)."""
        gemm = cls.__new__(cls)
        gemm.__dict__.update(conv.__dict__)  # the parameter, buffer and hook dicts themselves, not copies
        gemm.passes = passes
        return gemm

    def passes_for(self, x: torch.Tensor) -> GemmPasses:
        if self.passes is not None:
            return self.passes
        if x.device.type != "cpu":
            return GemmPasses()
        return auto_passes(output_size(x.shape, self.weight.shape, self.stride, self.padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups, self.passes_for(x))


def use_gemm_weight_grads(root: nn.Module) -> int:
    """Swap every trainable plain ``nn.Conv2d`` under ``root`` for a ``GemmConv2d`` with the policy above; frozen
    ones (no weight gradient to compute) stay. Returns how many were swapped. Call before building optimizers
    or compiling (the parameters are the same objects either way)."""
    swapped = 0
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d and child.weight.requires_grad and child.padding_mode == "zeros" \
                    and child.dilation == (1, 1) and not isinstance(child.padding, str):
                setattr(parent, name, GemmConv2d.from_conv(child))
                swapped += 1
    return swapped
