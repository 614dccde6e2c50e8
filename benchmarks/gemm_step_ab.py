"""One stage-2 (or stage-1) training step, ``gemm_weight_grads`` small_maps against off, in one process.

    PYTHONPATH=src python benchmarks/gemm_step_ab.py --image-size 64 --config configs/official_stl10.yaml \
        --ae-config configs/official_stl10_ae.yaml --set precision=auto --pairs 20

Both model sets are built from the same config and seed, then stepped in pairs (the order alternating pair by pair) on
one fixed batch, so a slow spell of a shared machine hits both sides of a pair alike: the median of the per-pair time
ratios is the figure, with each side's median and fastest step beside it. On the machine where the neighbours' load
moves a step's time by 2x between runs (RESULTS.md), this is steadier than comparing separate processes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from step_options import add_step_arguments, config_pairs, header

from spotart.bench import _runtime, placeholder_pairs, split_set_pairs
from spotart.config import build_config
from spotart.models.gemm_conv import use_gemm_weight_grads
from spotart.train.nonfinite import NonFiniteGuard
from spotart.train.optimisation import make_adam
from spotart.train.stage1 import autoencoder_step, new_autoencoder
from spotart.train.stage2 import build_models, spot_step


def configs_of(args: argparse.Namespace):
    """``(cfg, ae_cfg)``: the stage's training config and the train-ae config of its autoencoder (stage 1: the same
    config). For stage 2 each ``--set`` key goes to the stages that have it, as in ``spotart bench``
    (``decoder_upsampling`` to the autoencoder, ``drop_rate`` to stage 2)."""
    if args.stage == 1:
        cfg = build_config("train-ae", args.config, set_pairs=config_pairs(args))
        return cfg, cfg
    ae_pairs, spot_pairs = split_set_pairs(args.set)
    base = placeholder_pairs(args.image_size, args.batch_size)
    return (build_config("train-spot", args.config, set_pairs=base + spot_pairs),
            build_config("train-ae", args.ae_config, set_pairs=base + ae_pairs))


def make_step(stage: int, cfg, ae_cfg, gemm: str, images: torch.Tensor):
    """One step of ``stage`` with ``gemm_weight_grads=gemm``; ``ae_cfg`` is the train-ae config of the autoencoder
    (stage 1 trains it, stage 2 freezes it)."""
    runtime = _runtime(cfg.precision, cfg.channels_last, torch.device("cpu"), gemm)
    torch.manual_seed(0)
    x = runtime.to_device(images)
    if stage == 2:
        models = build_models(cfg, new_autoencoder(ae_cfg), runtime)
        models.generator.train()
        models.discriminator.train()
        masks = torch.Generator().manual_seed(0)
        return lambda: spot_step(models, x, cfg, runtime, step=1, mask_generator=masks)
    model = new_autoencoder(ae_cfg).to(memory_format=runtime.memory_format).train()
    if runtime.gemm_weight_grads:
        use_gemm_weight_grads(model)
    optimizer = make_adam(model, cfg)
    guard = NonFiniteGuard.for_device(runtime.device)
    return lambda: autoencoder_step(model, x, optimizer, runtime, cfg.recon_weight, guard)


def profile_steps(steps: dict, count: int) -> int:
    """Operators by self CPU time over ``count`` steps of each setting (which operators the matrix products add and
    which oneDNN calls they shorten)."""
    from torch.profiler import ProfilerActivity, profile

    for name, step in steps.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(count):
                step()
        print(f"gemm_weight_grads={name}, {count} steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_arguments(parser)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="instead: profile STEPS steps of each setting, the operators by self time")
    args = parser.parse_args(argv)
    cfg, ae_cfg = configs_of(args)
    images = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size) * 2 - 1
    steps = {name: make_step(args.stage, cfg, ae_cfg, name, images) for name in ("small_maps", "off")}
    for step in steps.values():  # warm-up: oneDNN primitives, allocator
        step(), step()
    if args.profile:
        return profile_steps(steps, args.profile)
    times: dict[str, list[float]] = {"small_maps": [], "off": []}
    for index in range(args.pairs):
        for name in (("small_maps", "off") if index % 2 == 0 else ("off", "small_maps")):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    ratios = [off / gemm for gemm, off in zip(times["small_maps"], times["off"])]
    print(f"{header(args)}; {torch.get_num_threads()} threads, {args.pairs} pairs")
    for name in ("small_maps", "off"):
        print(f"gemm_weight_grads={name}: median {statistics.median(times[name]):.3f} s/step, "
              f"fastest {min(times[name]):.3f}")
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"speed-up of small_maps over off: median of pair ratios {statistics.median(ratios):.2f}x "
          f"(quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f}); fastest against fastest "
          f"{min(times['off']) / min(times['small_maps']):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
