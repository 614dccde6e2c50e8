"""torchrun support: process-group set-up from the environment torchrun provides, and rank helpers.

Launched without torchrun, everything here is a no-op and training runs as a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def convert_batchnorm(module: nn.Module, enabled: bool, device: torch.device) -> nn.Module:
    """SyncBatchNorm (statistics over the global batch) when asked for; PyTorch implements it for GPUs only."""
    if not enabled:
        return module
    if device.type != "cuda":
        raise ValueError("sync_batchnorm needs GPUs (PyTorch's SyncBatchNorm has no CPU implementation)")
    return nn.SyncBatchNorm.convert_sync_batchnorm(module) if is_distributed() else module


def broadcast_module(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (the models are built from the same seed anyway)."""
    if is_distributed():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.Tensor]) -> None:
    """Average gradients over ranks in one flat all-reduce.

    Used instead of DistributedDataParallel because stage 2 runs two backward passes on one forward (C's loss
    into C, R's loss through C into R), which DDP's once-per-forward reducer does not allow.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(row: dict, device: torch.device) -> dict:
    """Average the float entries of a metrics row over ranks, so the log describes the global batch."""
    if not is_distributed():
        return row
    keys = [k for k, v in row.items() if isinstance(v, float)]
    tensor = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {**row, **{k: float(v) / world_size() for k, v in zip(keys, tensor.tolist())}}


def max_over_ranks(value: float, device: torch.device) -> float:
    """The largest ``value`` of any rank: one decision (such as "the time budget is spent") taken by all."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def weights_in_sync(modules: list[nn.Module], device: torch.device) -> bool:
    """True when every rank holds bit-identical trainable weights (a fingerprint compared with all-reduce)."""
    if not is_distributed():
        return True
    values = [p.detach().double().sum() + (p.detach().double() ** 2).sum() for m in modules for p in m.parameters()]
    fingerprint = torch.stack(values).to(device)
    low, high = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))
