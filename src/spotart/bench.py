"""``spotart bench``: how close training runs to this machine's limits.

In one run: the bf16 and fp32 matrix-multiply ceilings; FLOPs per image of each stage (counted by
``torch.utils.flop_counter``); images/s of stage-1 steps, stage-2 steps, the data pipeline alone and probe
feature extraction; the achieved TFLOP/s and its fraction of the measured ceiling; peak memory; and the plain
fp32 eager path (no autocast, no channels_last, no compilation) timed side by side as the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, build_config, config_class
from .data import DataError, training_loader
from .data.augment_device import DeviceAugment
from .models import AutoEncoder, Discriminator
from .models.gemm_conv import use_gemm_weight_grads
from .train.device import (
    Runtime,
    configure_backends,
    maybe_compile,
    resolve_channels_last,
    resolve_gemm_weight_grads,
    resolve_precision,
)
from .train.nonfinite import NonFiniteGuard
from .train.optimisation import make_adam
from .train.session import batch_images
from .train.stage1 import autoencoder_step, new_autoencoder
from .train.stage2 import build_models, spot_step

log = logging.getLogger("spotart")

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenette-96" / "train"


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` without a CUDA device is a one-line error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); "
                          "use --device cpu or --device auto")
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def default_matmul_size(device: torch.device) -> int:
    """Large enough to saturate the device: 8192^2 keeps an H100/H200's tensor cores busy, 4096^2 a CPU's."""
    return 8192 if device.type == "cuda" else 4096


def matmul_rates(dtype: torch.dtype, device: torch.device, size: int | None = None, seconds: float = 2.0,
                 bursts: int = 8) -> tuple[float, float]:
    """(sustained, best burst) TFLOP/s of a square matrix product: the ceiling convolutions are measured against.

    The products run for about ``seconds`` in up to ``bursts`` timed bursts: the sustained figure is all of them
    together, the best one the fastest burst (on a shared machine, the one least slowed by other work). On CUDA
    the products are queued back to back and timed with CUDA events: the device's time, not the launches'.
    """
    size = size or default_matmul_size(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    one = _elapsed(lambda: a @ b, 1, device)
    total = max(3, round(seconds / max(one, 1e-6)))
    bursts = min(bursts, total)
    reps = -(-total // bursts)
    times = [_elapsed(lambda: a @ b, reps, device) for _ in range(bursts)]
    flops = 2 * size**3 * reps
    return flops * bursts / sum(times) / 1e12, flops / min(times) / 1e12


def matmul_tflops(dtype: torch.dtype, device: torch.device, size: int | None = None, seconds: float = 2.0) -> float:
    """Sustained TFLOP/s of a square matrix product (``matmul_rates``' first figure)."""
    return matmul_rates(dtype, device, size, seconds)[0]


def _elapsed(work: Callable[[], Any], reps: int, device: torch.device) -> float:
    """Seconds that ``reps`` calls of ``work`` take on the device."""
    if device.type == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(reps):
            work()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3
    start = time.perf_counter()
    for _ in range(reps):
        work()
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def step_seconds(step: Callable[[], Any], warmup: int, steps: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` calls after ``warmup`` untimed ones. On CUDA an event after each step marks
    its end on the device and the host never waits in between, so steps overlap their launches as in training."""
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        marks = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
        marks[0].record()
        for index in range(steps):
            step()
            marks[index + 1].record()
        marks[-1].synchronize()
        return [marks[i].elapsed_time(marks[i + 1]) / 1e3 for i in range(steps)]
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def time_steps(step: Callable[[], Any], images_per_step: int, warmup: int, steps: int, device: torch.device) -> float:
    """Images per second over ``steps`` calls after ``warmup`` untimed ones."""
    times = step_seconds(step, warmup, steps, device)
    return images_per_step * len(times) / max(sum(times), 1e-9)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _runtime(precision: str, channels_last: str, device: torch.device, gemm_weight_grads: str = "off") -> Runtime:
    dtype = resolve_precision(precision, device)
    return Runtime(device, dtype, resolve_channels_last(channels_last, device, dtype),
                   resolve_gemm_weight_grads(gemm_weight_grads, device))


def _stage1(cfg, runtime: Runtime, images: torch.Tensor) -> Callable[[], Any]:
    model = new_autoencoder(cfg).to(runtime.device, memory_format=runtime.memory_format).train()
    if runtime.gemm_weight_grads:
        use_gemm_weight_grads(model)
    optimizer = make_adam(model, cfg)
    forward = maybe_compile(model, cfg.compile)
    x = runtime.to_device(images)
    guard = NonFiniteGuard.for_device(runtime.device)  # as in training: deferred (sync-free) on CUDA
    return lambda: autoencoder_step(forward, x, optimizer, runtime, cfg.recon_weight, guard)


def _stage2(cfg, runtime: Runtime, images: torch.Tensor, ae_cfg=None) -> Callable[[], Any]:
    """A stage-2 step on the frozen autoencoder that ``ae_cfg`` (a train-ae config) would train; the default
    autoencoder without it."""
    models = build_models(cfg, new_autoencoder(ae_cfg) if ae_cfg is not None else AutoEncoder(), runtime)
    models.generator.train()
    models.discriminator.train()
    x = runtime.to_device(images)
    mask_gen = torch.Generator(device=runtime.device).manual_seed(0)
    guard = NonFiniteGuard.for_device(runtime.device)
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


def _data_rate(cfg, batches: int, runtime: Runtime) -> tuple[float | None, int]:
    """(images/s, images timed) of the training input as a run gets it: loader workers, the copy to the device and,
    under ``gpu_augment``, the augmentation there (the device is synchronised once, at the end). ``batches`` full
    batches are timed after a first one (which starts the workers), going round the data again when it is short;
    ``None`` when the data cannot fill two batches, so that there is nothing to time."""
    try:
        loader, sampler, _ = training_loader(cfg, pin_memory=runtime.device.type == "cuda")
    except DataError:  # fewer images than one batch
        return None, 0
    if len(loader) < 2:
        return None, 0
    augment = DeviceAugment.from_config(cfg) if cfg.gpu_augment else None
    epoch = 0
    sampler.set_epoch(epoch)
    iterator = iter(loader)
    batch_images(next(iterator), runtime, augment, 0)  # workers started
    _sync(runtime.device)
    start, count = time.perf_counter(), 0
    for index in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:  # a short folder: once more round it (the workers' restart is part of the cost)
            epoch += 1
            sampler.set_epoch(epoch)
            iterator = iter(loader)
            batch = next(iterator)
        batch_images(batch, runtime, augment, index + 1)
        count += batch["images"].shape[0]
    _sync(runtime.device)
    return count / (time.perf_counter() - start), count


def device_augment_rate(cfg, runtime: Runtime, side: int, repeats: int = 5) -> float:
    """Images/s of ``DeviceAugment`` alone, on canvases already on the device."""
    augment = DeviceAugment.from_config(cfg)
    canvas = torch.randint(0, 256, (cfg.batch_size, 3, side, side), dtype=torch.uint8, device=runtime.device)
    extents = torch.tensor([[side, side, side, side]] * cfg.batch_size, device=runtime.device)

    def step(index: list[int] = [0]) -> None:  # noqa: B006 - a counter, so each call draws new parameters
        index[0] += 1
        augment(canvas, extents, index[0])

    return time_steps(step, cfg.batch_size, 1, repeats, runtime.device)


def split_set_pairs(pairs: list[str]) -> tuple[list[str], list[str]]:
    """``--set`` pairs for stage 1 and for stage 2: each key goes to the stages whose config has it (a key of both,
    like ``precision``, to both; ``decoder_upsampling`` to stage 1, which builds the autoencoder stage 2 freezes;
    ``drop_rate`` to stage 2). A key neither has goes to both, so that the config says it is unknown."""
    ae_keys, spot_keys = ({field.name for field in dataclasses.fields(config_class(command))}
                          for command in ("train-ae", "train-spot"))
    ae_pairs, spot_pairs = [], []
    for pair in pairs:
        key = pair.partition("=")[0].strip()
        known_to_one = (key in ae_keys) != (key in spot_keys)
        if key in ae_keys or not known_to_one:
            ae_pairs.append(pair)
        if key in spot_keys or not known_to_one:
            spot_pairs.append(pair)
    return ae_pairs, spot_pairs


def placeholder_pairs(image_size: int, batch_size: int) -> list[str]:
    """The ``--set`` pairs that make a training config for a step on random images: a data folder that is never
    read, the size and batch asked for, and a step count that no schedule reaches before the timing ends."""
    return ["data=unused", f"image_size={image_size}", f"batch_size={batch_size}", "steps=1000"]


def build_step(stage: int, image_size: int, batch_size: int, set_pairs: list[str] | None = None,
               config: str | None = None, ae_config: str | None = None, device: str = "auto"):
    """One training step of stage 1 or 2 on random images, as ``spotart bench`` times it: ``(cfg, runtime, step)``.

    For the benchmark scripts (``roofline.py``, ``profile_step.py``), so that they measure what training runs.
    ``config`` is the stage's YAML; for stage 2, ``ae_config`` is the YAML of the stage 1 whose autoencoder it
    freezes (for example ``configs/official_stl10_ae.yaml``, whose ``tf_legacy`` upsampling the official stage 2
    expects). ``set_pairs`` go to the stages that have each key (:func:`split_set_pairs`). The runtime (precision,
    layout, matrix-product weight gradients) is the stage's config's.
    """
    target = resolve_device(device)
    pairs = placeholder_pairs(image_size, batch_size)
    if stage == 1:
        cfg = build_config("train-ae", config, set_pairs=pairs + list(set_pairs or []))
        runtime = _runtime(cfg.precision, cfg.channels_last, target, cfg.gemm_weight_grads)
        return cfg, runtime, _stage1(cfg, runtime, _random_images(batch_size, image_size))
    if stage != 2:
        raise ConfigError(f"stage must be 1 or 2, got {stage!r}")
    ae_pairs, spot_pairs = split_set_pairs(list(set_pairs or []))
    ae_cfg = build_config("train-ae", ae_config, set_pairs=pairs + ae_pairs)
    cfg = build_config("train-spot", config, set_pairs=pairs + spot_pairs)
    runtime = _runtime(cfg.precision, cfg.channels_last, target, cfg.gemm_weight_grads)
    return cfg, runtime, _stage2(cfg, runtime, _random_images(batch_size, image_size), ae_cfg=ae_cfg)


def _random_images(batch_size: int, image_size: int) -> torch.Tensor:
    return torch.rand(batch_size, 3, image_size, image_size) * 2 - 1  # the [-1, 1] range the networks see


def run_bench(data: str | None = None, image_size: int = 96, batch_size: int = 64, steps: int = 5,
              warmup: int = 2, fp32_steps: int = 2, num_workers: int = 2, compile: bool = False,
              device: str = "auto", set_pairs: list[str] | None = None) -> dict[str, Any]:
    """Every figure of ``spotart bench`` in one dict; the same keys on CPU and CUDA.

    ``set_pairs`` are ``key=value`` config overrides, each for the stages that have the key (:func:`split_set_pairs`).
    """
    target = resolve_device(device)
    tmp = None
    data_source = data
    data_batches = max(10, 2 * steps)
    if data is None:
        if DEFAULT_DATA.is_dir():
            data = data_source = str(DEFAULT_DATA)
        else:
            from .data.bundled_photos import write_benchmark_images

            tmp = tempfile.TemporaryDirectory()
            count = write_benchmark_images(Path(tmp.name), (data_batches + 1) * batch_size, image_size)
            data = tmp.name
            data_source = f"{count} JPEGs of {image_size} px cut from the bundled photographs (no data set found)"
    pairs = [f"data={data}", f"image_size={image_size}", f"batch_size={batch_size}", "steps=1000",
             f"num_workers={num_workers}", f"compile={compile}"]
    ae_pairs, spot_pairs = split_set_pairs(set_pairs or [])
    ae_cfg = build_config("train-ae", set_pairs=pairs + ae_pairs)
    spot_cfg = build_config("train-spot", set_pairs=pairs + spot_pairs)
    configure_backends(target, ae_cfg.deterministic)
    images = _random_images(batch_size, image_size)
    fast = _runtime(ae_cfg.precision, ae_cfg.channels_last, target, ae_cfg.gemm_weight_grads)
    eager = _runtime("fp32", "off", target)
    result: dict[str, Any] = {"device": str(target), "device_name": device_name(target),
                              "instruction_sets": instruction_sets(target),
                              "threads": torch.get_num_threads(), "image_size": image_size,
                              "batch_size": batch_size, "path": fast.describe() + (" compiled" if compile else ""),
                              "reference_path": eager.describe(), "gpu_augment": ae_cfg.gpu_augment,
                              "num_workers": num_workers}
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)

    log.info("bench: matmul ceilings on %s", result["device_name"])
    result["matmul_size"] = default_matmul_size(target)
    result["bf16_matmul_tflops"], result["bf16_matmul_tflops_best"] = matmul_rates(torch.bfloat16, target)
    result["fp32_matmul_tflops"], result["fp32_matmul_tflops_best"] = matmul_rates(torch.float32, target)
    kind = "bf16" if fast.dtype is torch.bfloat16 else "fp32"
    ceiling, ceiling_best = result[f"{kind}_matmul_tflops"], result[f"{kind}_matmul_tflops_best"]

    stage2 = functools.partial(_stage2, ae_cfg=ae_cfg)  # the autoencoder of the --set keys, e.g. tf_legacy
    for name, build in (("stage1", _stage1), ("stage2", stage2)):
        cfg = ae_cfg if name == "stage1" else spot_cfg
        step = build(cfg, fast, images)
        # FLOPs are counted on an eager step: compiled kernels bypass the counter
        eager_step = build(dataclasses.replace(cfg, compile=False), fast, images) if cfg.compile else step
        flops = count_flops(eager_step) / batch_size
        del eager_step
        log.info("bench: %s steps (%.2f GFLOP per image)", name, flops / 1e9)
        times = step_seconds(step, warmup, steps, target)
        rate, best = batch_size * len(times) / sum(times), batch_size / min(times)
        result[f"{name}_gflop_per_image"] = flops / 1e9
        result[f"{name}_images_per_s"] = rate
        result[f"{name}_tflops"] = rate * flops / 1e12
        result[f"{name}_fraction_of_{kind}_peak"] = rate * flops / 1e12 / ceiling
        # the fastest step against the fastest matmul burst: on a shared machine, the least disturbed of each
        result[f"{name}_images_per_s_best"] = best
        result[f"{name}_fraction_of_{kind}_peak_best"] = best * flops / 1e12 / ceiling_best
        if name == "stage2":
            log.info("bench: stage 2 on the fp32 eager reference path")
            ref = time_steps(build(cfg, eager, images), batch_size, 1, fp32_steps, target)
            result["stage2_fp32_eager_images_per_s"] = ref
            result["stage2_speedup_vs_fp32_eager"] = rate / ref
        del step
    for name in ("stage1", "stage2"):  # the keys that gpu_check.sh and RESULTS.md read, whatever the path
        for suffix in ("", "_best"):
            fp32 = result.get(f"{name}_fraction_of_fp32_peak{suffix}")
            result.setdefault(f"{name}_fraction_of_bf16_peak{suffix}", fp32)

    log.info("bench: the discriminator's Adam step, fused and per-parameter")
    result["adam_step_s_fused"] = adam_step_seconds(image_size, target, fused=True)
    result["adam_step_s_per_parameter"] = adam_step_seconds(image_size, target, fused=False)
    log.info("bench: probe feature extraction")
    result["features_images_per_s"] = time_steps(_features(image_size, fast, images), batch_size, 1, steps, target)
    log.info("bench: data pipeline (%d workers, augmentation on the %s)", num_workers,
             "device" if ae_cfg.gpu_augment else "CPU, in the workers")
    rate, timed = _data_rate(ae_cfg, data_batches, fast)
    result["data_source"] = data_source
    result["data_images_timed"] = timed
    result["data_images_per_s"] = rate
    if rate is None:
        result["data_not_measured"] = (f"the data ({data_source}) cannot fill two batches of {batch_size}: "
                                       "pass --data with more images")
        result["data_vs_stage1_consumption"] = result["data_vs_stage2_consumption"] = None
    else:
        result["data_vs_stage1_consumption"] = rate / result["stage1_images_per_s"]
        result["data_vs_stage2_consumption"] = rate / result["stage2_images_per_s"]
    result["device_augment_images_per_s"] = device_augment_rate(ae_cfg, fast, side=image_size, repeats=steps)
    result["peak_memory_gib"] = peak_memory_gib(target)
    result["peak_memory_kind"] = "max_memory_allocated" if target.type == "cuda" else "max RSS of the process"
    if tmp is not None:
        tmp.cleanup()
    return result


def instruction_sets(device: torch.device) -> str:
    """What the CPU offers for bf16 and fp32 matrix work, strongest first (AMX-BF16, AVX512-BF16, AVX512, AVX2), as
    its flags in /proc/cpuinfo list them, and the kernels PyTorch dispatches to; on CUDA, the GPU's compute
    capability. The ceiling is read against it: AMX makes bf16 products several times faster than AVX512-BF16."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"CUDA compute capability {major}.{minor}"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    named = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"),
                                     ("avx512f", "AVX512"), ("avx2", "AVX2")) if flag in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{', '.join(named) or 'no AVX2'} (PyTorch kernels: {capability})"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (what ``lscpu`` reports)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _data_row(result: dict[str, Any]) -> str:
    if result["data_images_per_s"] is None:
        return f"not measured: {result['data_not_measured']}"
    return (f"{result['data_images_per_s']:.1f} img/s with {result['num_workers']} workers, augmentation on the "
            f"{'device' if result['gpu_augment'] else 'CPU'} ({result['data_vs_stage1_consumption']:.1f}x what stage 1 "
            f"consumes, {result['data_vs_stage2_consumption']:.1f}x stage 2; {result['data_images_timed']} images of "
            f"{result['data_source']})")


def format_table(result: dict[str, Any]) -> str:
    rows = [
        ("bf16 matmul ceiling", f"{result['bf16_matmul_tflops']:.3f} TFLOP/s ({result['matmul_size']}^2 products; "
                                f"{result['instruction_sets']})"),
        ("fp32 matmul ceiling", f"{result['fp32_matmul_tflops']:.3f} TFLOP/s"),
        *((f"stage {n}", f"{result[f'stage{n}_images_per_s']:.1f} img/s, "
                         f"{result[f'stage{n}_gflop_per_image']:.2f} GFLOP/img, {result[f'stage{n}_tflops']:.3f} "
                         f"TFLOP/s = {100 * result[f'stage{n}_fraction_of_bf16_peak']:.0f}% of ceiling (best step "
                         f"vs best burst {100 * result[f'stage{n}_fraction_of_bf16_peak_best']:.0f}%)")
          for n in (1, 2)),
        ("stage 2, fp32 eager", f"{result['stage2_fp32_eager_images_per_s']:.1f} img/s "
                                f"(speed-up {result['stage2_speedup_vs_fp32_eager']:.1f}x)"),
        ("Adam step (disc.)", f"{result['adam_step_s_fused']:.3f} s fused, "
                              f"{result['adam_step_s_per_parameter']:.3f} s per-parameter"),
        ("probe features", f"{result['features_images_per_s']:.1f} img/s"),
        ("data pipeline", _data_row(result)),
        ("device augmentation", f"{result['device_augment_images_per_s']:.0f} img/s alone"),
        ("peak memory", f"{result['peak_memory_gib']:.2f} GiB ({result['peak_memory_kind']})"),
    ]
    width = max(len(name) for name, _ in rows)
    header = (f"{result['device']} ({result['device_name']}), {result['threads']} threads, {result['image_size']} px, "
              f"batch {result['batch_size']}, {result['path']} vs {result['reference_path']}")
    return "\n".join([header] + [f"{name:<{width}}  {value}" for name, value in rows])


def main(args) -> None:
    result = run_bench(args.data, args.image_size, args.batch_size, args.steps, args.warmup, args.fp32_steps,
                       args.num_workers, args.compile, args.device, args.set)
    print(json.dumps(result) if args.json else format_table(result))
