"""Device and precision: where a run computes, in which dtype and memory layout."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..config import CommonConfig
from . import distributed as dist_utils

log = logging.getLogger("spotart")


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", dist_utils.local_rank())
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matrix work is many times faster than fp32 on such CPUs."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # older torch
        return False


def resolve_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if setting == "fp32":
        return None
    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
    else:
        fast = cpu_has_fast_bf16()
    if setting == "bf16" or fast:
        return torch.bfloat16
    return None


def resolve_channels_last(setting: str, device: torch.device, dtype: torch.dtype | None) -> bool:
    if setting in ("on", "off"):
        return setting == "on"
    return dtype is not None or device.type == "cuda"  # oneDNN and cuDNN prefer NHWC for bf16/fp16 convs


def resolve_gemm_weight_grads(setting: str, device: torch.device) -> bool:
    """small_maps: on the CPU only (cuDNN's weight gradients have no such gap)."""
    return setting == "small_maps" and device.type == "cpu"


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """CUDA: let cuDNN time its convolution algorithms once per shape and keep the fastest (a training run's
    shapes never change); not when deterministic kernels are asked for, since the choice may differ between runs."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None = fp32
    channels_last: bool
    gemm_weight_grads: bool = False  # small-map weight gradients as matrix products (models/gemm_conv.py)

    @classmethod
    def from_config(cls, cfg: CommonConfig) -> Runtime:
        device = pick_device()
        dtype = resolve_precision(cfg.precision, device)
        return cls(device, dtype, resolve_channels_last(cfg.channels_last, device, dtype),
                   resolve_gemm_weight_grads(cfg.gemm_weight_grads, device))

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """Copy as the loader laid the batch out (from pinned memory on CUDA: asynchronous), then change the
        layout on the device: asking ``.to`` for both at once makes a strided copy on the host first, from pageable
        memory, which the GPU copy then waits for."""
        return images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.dtype)

    def describe(self) -> str:
        precision = "bf16 autocast" if self.dtype is torch.bfloat16 else "fp32"
        layout = "channels_last" if self.channels_last else "NCHW"
        gemm = ", small-map weight gradients as matrix products" if self.gemm_weight_grads else ""
        return f"{self.device} {precision} {layout}{gemm}"


def maybe_compile(module: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile`` the module when asked and supported; otherwise the module as it is, with a log line.

    Parameters and state dicts are shared with the original module, so checkpoints are unaffected.
    """
    if not enabled:
        return module
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            raise RuntimeError("torch.compile is not supported on this Python/platform")
        return torch.compile(module)
    except Exception as err:  # noqa: BLE001 - compilation is an optimisation, never a reason to stop
        log.warning("torch.compile unavailable (%s): running eagerly", err)
        return module
