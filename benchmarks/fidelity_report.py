"""How far spotart's official presets are from the authors' TF step, per tensor, in fp32 and in bf16.

    PYTHONPATH=src:. python benchmarks/fidelity_report.py --out benchmarks/results/fidelity.md

Replays one step of each stage from the official fixtures (tests/fidelity/replay.py; ../shared/fixtures/official_tf)
and writes, per stage and group of tensors (activations, losses, gradients, values after the step), the largest
deviation from TF: fp32 as spotart runs, fp32 with C's max-pool near-ties given TF's values, and the same step under
``precision=bf16`` (bf16 autocast, what ``precision=auto`` picks on AMX / AVX512-BF16 CPUs and on GPUs). The bf16 rows
are measurements, not pass/fail: they say what the bf16 preset gives up against TF's fp32. Then one table per tensor
for bf16. ``--decoder half_pixel`` replays stage 2 with the decoder in PyTorch's bilinear convention instead of TF1's
(what the official preset computed before ``decoder_upsampling`` existed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.fidelity import replay  # noqa: E402
from tests.fidelity.keys import after_keys, step_keys  # noqa: E402
from tests.fidelity.tolerances import compare  # noqa: E402

from spotart.bench import device_name  # noqa: E402

GROUPS = ("forward", "losses", "gradients", "after")


def grouped(stage: str, ours: dict) -> dict[str, list]:
    step, after = f"{stage}_step", f"{stage}_after"
    keys = step_keys(step)
    rows = {group: compare(step, replay.fixture(step), ours, keys[group]) for group in ("forward", "losses",
                                                                                           "gradients")}
    rows["after"] = compare(after, replay.fixture(after), ours, after_keys(after), prefix="after/")
    return rows


def worst(rows: list) -> str:
    """The largest deviation of a group, over whole arrays and slices (per-channel sums are aggregates of many
    elements: they are in the per-tensor tables, not here)."""
    row = max((r for r in rows if "#sum" not in r.key), key=lambda r: r.deviation)
    return f"{row.deviation:.2g} {row.unit} (`{row.key}`)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the markdown here (default: print it)")
    parser.add_argument("--decoder", choices=("tf_legacy", "half_pixel"), default="tf_legacy")
    args = parser.parse_args(argv)
    if not replay.fixtures_present():
        print(f"fidelity_report: the official fixtures are not at {replay.FIXTURES}", file=sys.stderr)
        return 2
    with mock.patch.object(replay, "cfg_autoencoder_upsampling", lambda: args.decoder):
        runs = {
            "fp32": {"stage2": replay.replay_stage2("fp32"), "stage1": replay.replay_stage1("fp32")},
            "fp32, ties resolved": {"stage2": replay.replay_stage2("fp32", resolve_ties=True)},
            "bf16": {"stage2": replay.replay_stage2("bf16"), "stage1": replay.replay_stage1("bf16")},
        }
    machine = device_name(torch.device("cpu"))
    lines = [f"Machine: {machine}. Decoder upsampling: {args.decoder}. Command: `PYTHONPATH=src:. python "
             f"benchmarks/fidelity_report.py{' --decoder half_pixel' if args.decoder != 'tf_legacy' else ''}`.",
             "Largest deviation per group: relative to the array's largest magnitude (after the step: in units of "
             "lr = 3e-4).", "",
             "| stage | run | activations | losses | gradients | after the step |", "|---|---|---|---|---|---|"]
    per_tensor = {}
    for run, stages in runs.items():
        for stage, ours in stages.items():
            rows = grouped(stage, ours)
            lines.append(f"| {stage[-1]} | {run} | " + " | ".join(worst(rows[g]) for g in GROUPS) + " |")
            if run == "bf16":
                per_tensor[stage] = rows
    for stage, rows in per_tensor.items():
        lines += ["", f"bf16, stage {stage[-1]}, every tensor (deviation from TF's fp32):", "",
                  "| group | tensor | deviation |", "|---|---|---|"]
        for group in GROUPS:
            for row in sorted(rows[group], key=lambda r: -r.deviation):
                lines.append(f"| {group} | `{row.key}` | {row.deviation:.2g} {row.unit} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    print("\n".join(lines[:10]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
