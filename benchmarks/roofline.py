"""A roofline of one training step on this CPU (or GPU): every convolution against the bf16 matmul ceiling, the rest
against the memory bandwidth, both measured in the same run.

    PYTHONPATH=src python benchmarks/roofline.py --stage 2 --image-size 96 --batch-size 64 --out roofline-96.md
    PYTHONPATH=src python benchmarks/roofline.py --stage 2 --image-size 64 --config configs/official_stl10.yaml \
        --ae-config configs/official_stl10_ae.yaml --set precision=auto

What it measures:

1. The ceilings: the bf16 (or fp32) square matrix product (``spotart.bench.matmul_rates``) and the memory bandwidth of
   an element-wise add over 3 x 256 MiB (STREAM's "add": two reads and one write).
2. One step of the stage, profiled with ``torch.profiler``: the time of every aten operator, by group. Convolutions
   (forward and backward) are the compute-bound part; the rest (BatchNorm, element-wise, casts and layout copies,
   upsampling, pooling, Adam, small matrix products) is reported as time and bytes moved (the operator's tensor
   inputs, plus an output the size of its first input) against the measured bandwidth.
3. Every convolution of the step, in isolation, as the step runs it (same dtype, layout and shapes): forward, the
   input gradient and the weight gradient (``aten.convolution_backward`` with one output each), each with its FLOPs,
   time, fraction of the ceiling and arithmetic intensity (FLOPs per byte of input, weight and output). How often a
   step runs each of them comes from ``torch.utils.flop_counter`` per module (e.g. C's layers run their input
   gradient twice: in C's backward and in R's).

The step is ``spotart bench``'s (``spotart.bench.build_step``), with the configs given (default: the dataclass
defaults, as ``spotart bench``); ``--ae-config`` names the stage 1 that stage 2 freezes.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from step_options import add_step_arguments  # noqa: E402

from spotart.bench import build_step, device_name, matmul_rates  # noqa: E402

DTYPE_BYTES = {"float": 4, "c10::BFloat16": 2, "c10::Half": 2, "double": 8, "long int": 8, "int": 4, "bool": 1,
               "unsigned char": 1, "signed char": 1}
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::convolution",
            "aten::conv2d", "aten::_nnpack_spatial_convolution", "aten::cudnn_convolution")
# operator name fragments -> the group it is reported in (first match wins)
GROUPS = (
    ("convolution", ("convolution",)),
    ("matmul (fc layers)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul")),
    ("BatchNorm", ("batch_norm",)),
    ("casts and layout copies", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::contiguous", "aten::clone",
                                 "aten::cat", "aten::stack")),
    ("upsampling", ("upsample",)),
    ("pooling", ("pool",)),
    ("Adam", ("adam",)),
    ("element-wise", ("aten::",)),
)


def measure_bandwidth(device: torch.device, mib: int = 256, repeats: int = 10) -> float:
    """GB/s of ``c = a + b`` over three float32 arrays of ``mib`` MiB each (two reads, one write)."""
    count = mib * 2**20 // 4
    a, b, c = (torch.rand(count, device=device) for _ in range(3))
    torch.add(a, b, out=c)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.add(a, b, out=c)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 3 * count * 4 * repeats / (time.perf_counter() - start) / 1e9


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, fragments in GROUPS:
        if any(fragment.lower() in lowered for fragment in fragments):
            return group
    return "other"


def event_bytes(event) -> int:
    """Bytes an operator moves: its tensor inputs, plus an output the size of its first tensor input."""
    total, first = 0, 0
    for shape, dtype in zip(event.input_shapes or [], event.input_dtypes or [], strict=False):
        if not shape or dtype not in DTYPE_BYTES:
            continue
        size = DTYPE_BYTES[dtype]
        for dim in shape:
            size *= dim
        total += size
        first = first or size
    return total + first


# operators that allocate or re-view memory: a kernel that calls only these did its work itself
TRIVIAL_CHILDREN = frozenset({"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::as_strided",
                              "aten::view", "aten::resize_", "aten::reshape", "aten::_reshape_alias", "aten::expand",
                              "aten::permute", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze",
                              "aten::t", "aten::transpose", "aten::alias", "aten::detach", "aten::zeros",
                              "aten::zero_", "aten::fill_", "aten::item", "aten::_local_scalar_dense"})


def profile_step(step) -> tuple[float, dict[str, list[float]]]:
    """(seconds of the profiled step, {group: [self seconds, bytes moved]}) over aten operators' self times."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        step()
        seconds = time.perf_counter() - start
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        group = group_of(event.name)
        groups[group][0] += event.self_cpu_time_total / 1e6
        if group not in ("convolution", "matmul (fc layers)") and event.self_cpu_time_total > 0:
            # bytes only for operators that did work themselves (not wrappers that called others)
            if all(child.name in TRIVIAL_CHILDREN for child in event.cpu_children if child.name.startswith("aten::")):
                groups[group][1] += event_bytes(event)
    return seconds, dict(groups)


def conv_uses(step, model_parts: dict[str, nn.Module]) -> tuple[dict[str, dict[str, int]], int]:
    """Per convolution module: FLOPs of its forward and backward in one step (``flop_counter`` by module, whose
    table names a module by its root's class and its attribute path: ``Discriminator.trunk.conv1``), and the step's
    total FLOPs from the same count."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    counts = {name: {str(op): flops for op, flops in table.items()} for name, table in
              counter.get_flop_counts().items()}
    uses: dict[str, dict[str, int]] = {}
    for prefix, part in model_parts.items():
        for name, module in part.named_modules():
            if isinstance(module, nn.Conv2d):
                uses[f"{prefix}.{name}"] = counts.get(f"{type(part).__name__}.{name}", {})
    return uses, counter.get_total_flops()


class ConvShapes:
    """The input shape, dtype and layout each convolution module saw in one step (forward hooks)."""

    def __init__(self, parts: dict[str, nn.Module]) -> None:
        self.seen: dict[str, tuple[nn.Conv2d, torch.Size, torch.dtype, bool, int]] = {}
        self.handles = []
        for prefix, part in parts.items():
            for name, module in part.named_modules():
                if isinstance(module, nn.Conv2d):
                    key = f"{prefix}.{name}"
                    self.handles.append(module.register_forward_hook(self._hook(key)))

    def _hook(self, key: str):
        def hook(module, args, output):
            x = args[0]
            channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            calls = self.seen[key][4] + 1 if key in self.seen else 1
            self.seen[key] = (module, x.shape, output.dtype, channels_last, calls)
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def conv_flops(module: nn.Conv2d, in_shape: torch.Size) -> tuple[int, tuple[int, ...]]:
    """Forward FLOPs (2 x multiply-adds) and the output shape."""
    batch, _, height, width = in_shape
    kh, kw = module.kernel_size
    sh, sw = module.stride
    ph, pw = module.padding if isinstance(module.padding, tuple) else (0, 0)
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    flops = 2 * batch * module.out_channels * out_h * out_w * (module.in_channels // module.groups) * kh * kw
    return flops, (batch, module.out_channels, out_h, out_w)


def time_conv(module: nn.Conv2d, in_shape, dtype, channels_last: bool, device, repeats: int = 7) -> dict[str, float]:
    """Seconds of the forward, the input gradient and the weight gradient of ``module`` on an input of ``in_shape``."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(in_shape, device=device, dtype=dtype).contiguous(memory_format=layout)
    weight = module.weight.detach().to(device=device, dtype=dtype).contiguous(memory_format=layout)
    bias = None if module.bias is None else module.bias.detach().to(device=device, dtype=dtype)
    padding = module.padding if isinstance(module.padding, tuple) else (0, 0)

    def forward():
        return F.conv2d(x, weight, bias, module.stride, padding, module.dilation, module.groups)

    out = forward()
    grad = torch.randn_like(out)

    def backward(mask):
        return torch.ops.aten.convolution_backward(grad, x, weight, None if bias is None else [bias.shape[0]],
                                                   list(module.stride), list(padding), list(module.dilation), False,
                                                   [0, 0], module.groups, mask)

    result = {}
    for name, work in (("forward", forward), ("input_grad", lambda: backward([True, False, False])),
                       ("weight_grad", lambda: backward([False, True, bias is not None]))):
        work()
        times = []
        for _ in range(repeats):  # the median: on a shared machine single calls are slowed by other work
            start = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    nbytes = {"x": x.numel() * x.element_size(), "w": weight.numel() * weight.element_size(),
              "y": out.numel() * out.element_size()}
    result["bytes"] = nbytes
    return result


def modules_of(step) -> dict[str, nn.Module]:
    """The networks inside ``spotart.bench``'s step closure (the models it built)."""
    found = {}
    for cell in step.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, nn.Module):
            found["model"] = value
        elif hasattr(value, "discriminator") and hasattr(value, "generator"):
            found["disc"] = value.discriminator
            found["gen"] = value.generator
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_arguments(parser)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 untimed); the median is reported")
    parser.add_argument("--out", type=Path, help="write the markdown tables here as well")
    args = parser.parse_args(argv)

    cfg, runtime, step = build_step(args.stage, args.image_size, args.batch_size, args.set, args.config,
                                    args.ae_config)
    device = runtime.device
    dtype = runtime.dtype or torch.float32
    kind = "bf16" if dtype is torch.bfloat16 else "fp32"
    # the best burst of the matrix product, and the median step: on a shared machine (a VM's two cores) both are
    # the figures least slowed by other work, so their ratio is the one that repeats
    sustained, ceiling = (rate * 1e12 for rate in matmul_rates(dtype, device))
    bandwidth = measure_bandwidth(device) * 1e9
    parts = modules_of(step)
    shapes = ConvShapes(parts)
    for _ in range(2):
        step()
    shapes.remove()
    step_times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
    step_s = statistics.median(step_times)
    uses, total_flops = conv_uses(step, parts)
    profiled_s, groups = profile_step(step)

    lines = [f"{device_name(device)}, {torch.get_num_threads()} threads; stage {args.stage} at {args.image_size} px, "
             f"batch {args.batch_size}, {runtime.describe()}; config {args.config or 'defaults'} "
             f"{' '.join('--set ' + s for s in args.set)}".rstrip(),
             f"Command: `PYTHONPATH=src python benchmarks/roofline.py {' '.join(argv or sys.argv[1:])}`", "",
             f"- {kind} matmul ceiling {ceiling / 1e12:.3f} TFLOP/s (best burst; sustained {sustained / 1e12:.3f}); "
             f"memory bandwidth {bandwidth / 1e9:.1f} GB/s (ridge point {ceiling / bandwidth:.0f} FLOP/byte)",
             f"- step {step_s:.3f} s, median of {args.steps} ({args.batch_size / step_s:.1f} img/s), "
             f"{total_flops / 1e9:.1f} GFLOP: "
             f"{total_flops / step_s / 1e12:.3f} TFLOP/s = {100 * total_flops / step_s / ceiling:.0f}% of the ceiling",
             "", "Where the profiled step's time goes (aten operators' own time; the profiler adds overhead: "
             f"{profiled_s:.3f} s profiled):", "",
             "| group | time (s) | share | bytes moved (GB) | achieved GB/s | % of bandwidth |",
             "|---|---|---|---|---|---|"]
    total_self = sum(v[0] for v in groups.values()) or 1.0
    for group, (seconds, moved) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        if group in ("convolution", "matmul (fc layers)"):
            lines.append(f"| {group} | {seconds:.3f} | {100 * seconds / total_self:.0f}% | (compute-bound) | | |")
        else:
            rate = moved / seconds / 1e9 if seconds else 0.0
            lines.append(f"| {group} | {seconds:.3f} | {100 * seconds / total_self:.0f}% | {moved / 1e9:.2f} | "
                         f"{rate:.1f} | {100 * rate * 1e9 / bandwidth:.0f}% |")
    lines += ["", "Every convolution in isolation (same shapes, dtype and layout as in the step); `calls` per step "
              "from the FLOP counter:", "",
              "| layer | input (N, C, H, W) | out ch, k, stride, groups | pass | calls | GFLOP | ms | % of ceiling | "
              "FLOP/byte |", "|---|---|---|---|---|---|---|---|---|"]
    conv_step_s = 0.0
    for key, (module, in_shape, out_dtype, channels_last, _calls) in sorted(shapes.seen.items()):
        flops, _out = conv_flops(module, in_shape)
        timing = time_conv(module, in_shape, out_dtype, channels_last, device)
        moved = sum(timing["bytes"].values())
        counted = uses.get(key, {})
        backward = counted.get("aten.convolution_backward", 0)
        forward_flops = counted.get("aten.convolution", 0)
        calls = {"forward": round(forward_flops / flops) if flops else 0}
        # convolution_backward's FLOPs: an input gradient costs a forward's; the counter (torch 2.14) books a
        # grouped convolution's weight gradient at ``groups`` forwards, so that is what one weight gradient adds here
        backward_units = round(backward / flops) if flops else 0
        calls["weight_grad"] = 1 if module.weight.requires_grad and backward_units else 0
        calls["input_grad"] = max(backward_units - calls["weight_grad"] * module.groups, 0)
        shape = f"{module.out_channels}, {module.kernel_size[0]}, {module.stride[0]}, {module.groups}"
        for name in ("forward", "input_grad", "weight_grad"):
            if not calls[name]:
                continue
            seconds = timing[name]
            conv_step_s += calls[name] * seconds
            lines.append(f"| {key} | {tuple(in_shape)} | {shape} | {name} | {calls[name]} | {flops / 1e9:.2f} | "
                         f"{1e3 * seconds:.1f} | {100 * flops / seconds / ceiling:.0f}% | {flops / moved:.0f} |")
    lines += ["", f"Convolutions in isolation add up to {conv_step_s:.3f} s of the {step_s:.3f} s step "
              f"({100 * conv_step_s / step_s:.0f}%)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
