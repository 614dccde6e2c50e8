"""``spotart bench``: how close training runs to this machine's limits.

In one run: the bf16 and fp32 matrix-multiply ceilings; FLOPs per image of each stage (counted by
``torch.utils.flop_counter``); images/s of stage-1 steps, stage-2 steps, the data pipeline alone and probe
feature extraction; the achieved TFLOP/s and its fraction of the measured ceiling; peak memory; and the plain
fp32 eager path (no autocast, no channels_last, no compilation) timed side by side as the reference.
"""

from __future__ import annotations

import json
import logging
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import build_config
from .data import training_loader
from .models import AutoEncoder, Discriminator
from .train.device import Runtime, resolve_channels_last, resolve_precision
from .train.nonfinite import NonFiniteGuard
from .train.optimisation import make_adam
from .train.stage1 import autoencoder_step
from .train.stage2 import build_models, spot_step

log = logging.getLogger("spotart")

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenette-96" / "train"


def matmul_tflops(dtype: torch.dtype, device: torch.device, size: int = 4096, seconds: float = 2.0) -> float:
    """Sustained TFLOP/s of a square matrix product: the ceiling that convolutions are measured against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e12


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def time_steps(step: Callable[[], Any], images_per_step: int, warmup: int, steps: int, device: torch.device) -> float:
    """Images per second over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return images_per_step * steps / (time.perf_counter() - start)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _runtime(precision: str, channels_last: str, device: torch.device) -> Runtime:
    dtype = resolve_precision(precision, device)
    return Runtime(device, dtype, resolve_channels_last(channels_last, device, dtype))


def _stage1(cfg, runtime: Runtime, images: torch.Tensor) -> Callable[[], Any]:
    model = AutoEncoder().to(runtime.device, memory_format=runtime.memory_format).train()
    optimizer = make_adam(model, cfg)
    x = runtime.to_device(images)
    return lambda: autoencoder_step(model, x, optimizer, runtime, cfg.recon_weight)


def _stage2(cfg, runtime: Runtime, images: torch.Tensor) -> Callable[[], Any]:
    models = build_models(cfg, AutoEncoder(), runtime)
    models.generator.train()
    models.discriminator.train()
    x = runtime.to_device(images)
    mask_gen = torch.Generator(device=runtime.device).manual_seed(0)
    guard = NonFiniteGuard()
    return lambda: spot_step(models, x, cfg, runtime, step=1, mask_generator=mask_gen, guard=guard)


def _features(image_size: int, runtime: Runtime, images: torch.Tensor) -> Callable[[], Any]:
    disc = Discriminator(image_size).to(runtime.device, memory_format=runtime.memory_format).eval()
    x = runtime.to_device(images)

    def extract() -> None:
        with torch.no_grad(), runtime.autocast():
            disc.forward_features(x)

    return extract


def adam_step_seconds(image_size: int, device: torch.device, fused: bool, repeats: int = 5) -> float:
    """Seconds per Adam update of the discriminator's parameters (``make_adam`` uses the fused kernel).

    The default per-parameter (for-loop) implementation is the reference: on CPU it spends most of its time in
    many small element-wise kernels, which the fused one runs as one pass per tensor.
    """
    disc = Discriminator(image_size).to(device)
    for param in disc.parameters():
        param.grad = torch.randn_like(param)
    kind = {"fused": True} if fused else {"foreach": False}
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-4, **kind)
    optimizer.step()  # allocates the moment buffers
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _data_rate(cfg, batches: int) -> float:
    loader, sampler, _ = training_loader(cfg)
    sampler.set_epoch(0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        try:
            count += next(iterator)["images"].shape[0]
        except StopIteration:
            break
    return count / (time.perf_counter() - start)


def run_bench(data: str | None = None, image_size: int = 96, batch_size: int = 64, steps: int = 5,
              warmup: int = 2, fp32_steps: int = 2, num_workers: int = 2, compile: bool = False) -> dict[str, Any]:
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    tmp = None
    if data is None:
        if DEFAULT_DATA.is_dir():
            data = str(DEFAULT_DATA)
        else:
            from .demo import write_demo_images

            tmp = tempfile.TemporaryDirectory()
            write_demo_images(Path(tmp.name))
            data = tmp.name
    pairs = [f"data={data}", f"image_size={image_size}", f"batch_size={batch_size}", "steps=1000",
             f"num_workers={num_workers}", f"compile={compile}"]
    ae_cfg = build_config("train-ae", set_pairs=pairs)
    spot_cfg = build_config("train-spot", set_pairs=pairs)
    images = torch.rand(batch_size, 3, image_size, image_size) * 2 - 1
    fast = _runtime("auto", "auto", device)
    eager = _runtime("fp32", "off", device)
    result: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), "image_size": image_size,
                              "batch_size": batch_size, "path": fast.describe(), "reference_path": eager.describe()}

    log.info("bench: matmul ceilings")
    result["bf16_matmul_tflops"] = matmul_tflops(torch.bfloat16, device)
    result["fp32_matmul_tflops"] = matmul_tflops(torch.float32, device)
    ceiling = result["bf16_matmul_tflops"] if fast.dtype is torch.bfloat16 else result["fp32_matmul_tflops"]

    for name, build in (("stage1", _stage1), ("stage2", _stage2)):
        cfg = ae_cfg if name == "stage1" else spot_cfg
        step = build(cfg, fast, images)
        flops = count_flops(step) / batch_size
        log.info("bench: %s steps (%.2f GFLOP per image)", name, flops / 1e9)
        rate = time_steps(step, batch_size, warmup, steps, device)
        result[f"{name}_gflop_per_image"] = flops / 1e9
        result[f"{name}_images_per_s"] = rate
        result[f"{name}_tflops"] = rate * flops / 1e12
        result[f"{name}_fraction_of_{'bf16' if fast.dtype else 'fp32'}_peak"] = rate * flops / 1e12 / ceiling
        if name == "stage2":
            log.info("bench: stage 2 on the fp32 eager reference path")
            ref = time_steps(build(cfg, eager, images), batch_size, 1, fp32_steps, device)
            result["stage2_fp32_eager_images_per_s"] = ref
            result["stage2_speedup_vs_fp32_eager"] = rate / ref
    result.setdefault("stage2_fraction_of_bf16_peak", result.get("stage2_fraction_of_fp32_peak"))
    result.setdefault("stage1_fraction_of_bf16_peak", result.get("stage1_fraction_of_fp32_peak"))

    log.info("bench: the discriminator's Adam step, fused and per-parameter")
    result["adam_step_s_fused"] = adam_step_seconds(image_size, device, fused=True)
    result["adam_step_s_per_parameter"] = adam_step_seconds(image_size, device, fused=False)
    log.info("bench: probe feature extraction")
    result["features_images_per_s"] = time_steps(_features(image_size, fast, images), batch_size, 1, steps, device)
    log.info("bench: data pipeline alone (%d workers)", num_workers)
    result["data_images_per_s"] = _data_rate(ae_cfg, batches=max(10, 2 * steps))
    result["data_vs_stage2_consumption"] = result["data_images_per_s"] / result["stage2_images_per_s"]
    result["peak_memory_gib"] = peak_memory_gib(device)
    if tmp is not None:
        tmp.cleanup()
    return result


def format_table(result: dict[str, Any]) -> str:
    rows = [
        ("bf16 matmul ceiling", f"{result['bf16_matmul_tflops']:.3f} TFLOP/s"),
        ("fp32 matmul ceiling", f"{result['fp32_matmul_tflops']:.3f} TFLOP/s"),
        ("stage 1", f"{result['stage1_images_per_s']:.1f} img/s, {result['stage1_gflop_per_image']:.2f} GFLOP/img, "
                    f"{result['stage1_tflops']:.3f} TFLOP/s = {100 * result['stage1_fraction_of_bf16_peak']:.0f}% "
                    "of ceiling"),
        ("stage 2", f"{result['stage2_images_per_s']:.1f} img/s, {result['stage2_gflop_per_image']:.2f} GFLOP/img, "
                    f"{result['stage2_tflops']:.3f} TFLOP/s = {100 * result['stage2_fraction_of_bf16_peak']:.0f}% "
                    "of ceiling"),
        ("stage 2, fp32 eager", f"{result['stage2_fp32_eager_images_per_s']:.1f} img/s "
                                f"(speed-up {result['stage2_speedup_vs_fp32_eager']:.1f}x)"),
        ("Adam step (disc.)", f"{result['adam_step_s_fused']:.3f} s fused, "
                              f"{result['adam_step_s_per_parameter']:.3f} s per-parameter"),
        ("probe features", f"{result['features_images_per_s']:.1f} img/s"),
        ("data pipeline", f"{result['data_images_per_s']:.1f} img/s "
                          f"({result['data_vs_stage2_consumption']:.1f}x what stage 2 consumes)"),
        ("peak memory", f"{result['peak_memory_gib']:.2f} GiB"),
    ]
    width = max(len(name) for name, _ in rows)
    header = (f"{result['device']}, {result['threads']} threads, {result['image_size']} px, "
              f"batch {result['batch_size']}, {result['path']} vs {result['reference_path']}")
    return "\n".join([header] + [f"{name:<{width}}  {value}" for name, value in rows])


def main(args) -> None:
    result = run_bench(args.data, args.image_size, args.batch_size, args.steps, args.warmup, args.fp32_steps,
                       args.num_workers, args.compile)
    print(json.dumps(result) if args.json else format_table(result))
