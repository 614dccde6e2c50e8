#!/usr/bin/env python3
"""kNN trajectories against wall time: how fast each pretext task teaches the trunk, one panel per layer.

Reads the kNN monitor's rows (``knn_conv2``, ``knn_conv3``, ``knn_conv5``, ...) from run directories' metrics.jsonl
(``train-rotnet`` and ``train-spot`` with ``--set knn_val=DIR``) and draws top-1 against ``wall_s``, the run's
training seconds summed across resumes (without the monitor's own evaluations). Runs given the same label share a
colour (the seeds of one row). A random-init reference (``--random-init``: the JSON of
``benchmarks/knn_checkpoints.py --random-seeds ...``) is drawn as a dashed line at the mean of its random inits.
Stage 2's clock starts at 0 like RotNet's: ``--offset LABEL=SECONDS`` (or ``LABEL=RUN_DIR``: that run's last
``wall_s``, e.g. the stage-1 autoencoder's) starts a label's runs later, so that a panel compares the same total time.

    python benchmarks/trajectories.py --out benchmarks/results/trajectories.png \\
        --run "RotNet=WORK/rotnet_equal_time/run" --run "full method=WORK/full/run" \\
        --offset "full method=WORK/autoencoder/run" --random-init WORK/knn_random.json

Prints, per label and layer, the start, best and last top-1 (mean over the label's runs). ``--table OUT.md`` also
writes every run's kNN rows as a markdown table, with the pretext task's accuracies logged at the same steps
(stage 2: ``disc_acc``, ``mask_acc``, ``mask_acc_fake``; RotNet: ``rot_acc``) and the training minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAYERS = ("conv2", "conv3", "conv5")
# matplotlib's tab10, in an order that keeps the first pairs far apart; labels past ten reuse colours
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


class TrajectoryError(ValueError):
    """Input this script cannot draw: the message names the folder and what is missing."""


@dataclass
class Run:
    label: str
    folder: Path
    points: dict[str, list[tuple[float, float]]]  # layer -> [(x, top-1 %)], in step order
    rows: list[dict]  # every row of its metrics.jsonl (``--table`` reads the accuracies from them)


def read_run(label: str, folder: Path, layers: tuple[str, ...], x_key: str, offset: float = 0.0) -> Run:
    """The kNN points of one run directory (or its metrics.jsonl), with clear errors for what is missing."""
    path = folder if folder.name == "metrics.jsonl" else folder / "metrics.jsonl"
    if not path.is_file():
        raise TrajectoryError(f"{folder}: no metrics.jsonl (give a train-rotnet or train-spot run directory)")
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise TrajectoryError(f"{path} is not JSON lines ({err})") from None
    points: dict[str, list[tuple[float, float]]] = {layer: [] for layer in layers}
    for row in rows:
        for layer in layers:
            value = row.get(f"knn_{layer}", row.get("knn_top1") if layer == "conv5" else None)  # old runs: conv5 only
            if value is None:
                continue
            if x_key not in row:
                raise TrajectoryError(f"{path}: kNN rows without {x_key} (logged before spotart recorded it); "
                                      "use --x step")
            x = float(row[x_key]) + offset if x_key == "wall_s" else float(row[x_key])
            points[layer].append((x / 60.0 if x_key == "wall_s" else x, float(value)))
    missing = [layer for layer, found in points.items() if not found]
    if missing:
        raise TrajectoryError(f"{path}: no knn_{missing[0]} rows (train with --set knn_val=DIR for the kNN monitor, "
                              f"--set knn_layers=... for its layers)")
    return Run(label, folder, points, rows)


def offset_seconds(value: str) -> float:
    """SECONDS, or a run directory: its last ``wall_s`` (the time that run trained)."""
    try:
        return float(value)
    except ValueError:
        pass
    path = Path(value).expanduser()
    metrics = path if path.name == "metrics.jsonl" else path / "metrics.jsonl"
    if not metrics.is_file():
        raise TrajectoryError(f"--offset {value!r} is neither seconds nor a run directory with metrics.jsonl")
    walls = [row["wall_s"] for row in map(json.loads, metrics.read_text().splitlines()) if "wall_s" in row]
    if not walls:
        raise TrajectoryError(f"--offset {value!r}: {metrics} has no wall_s")
    return float(walls[-1])


def random_reference(path: Path, layers: tuple[str, ...]) -> dict[str, float]:
    """Mean top-1 per layer over the random inits of a ``knn_checkpoints.py --json`` file."""
    if not path.is_file():
        raise TrajectoryError(f"--random-init {path}: no such file")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TrajectoryError(f"--random-init {path} is not JSON ({err})") from None
    if not isinstance(results, dict):
        raise TrajectoryError(f"--random-init {path}: expected {{name: {{layer: top-1}}}} (knn_checkpoints.py --json)")
    randoms = [values for name, values in results.items() if name.startswith("random init")] or list(results.values())
    reference = {}
    for layer in layers:
        values = [entry[layer] for entry in randoms if isinstance(entry, dict) and layer in entry]
        if not values:
            raise TrajectoryError(f"--random-init {path} has no {layer} value")
        reference[layer] = statistics.fmean(values)
    return reference


def draw(runs: list[Run], layers: tuple[str, ...], out: Path, x_key: str, reference: dict[str, float] | None,
         title: str) -> None:
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(run.label for run in runs))
    colour = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(labels)}
    figure = Figure(figsize=(4.2 * len(layers), 3.6), layout="constrained")
    axes = figure.subplots(1, len(layers), squeeze=False)[0]
    for axis, layer in zip(axes, layers):
        shown: set[str] = set()
        for run in runs:
            xs, ys = zip(*run.points[layer])
            axis.plot(xs, ys, marker="o", markersize=3, linewidth=1.4, color=colour[run.label],
                      label=run.label if run.label not in shown else None)
            shown.add(run.label)
        if reference:
            axis.axhline(reference[layer], color="0.4", linestyle="--", linewidth=1.0, label="random init")
        axis.set_title(layer)
        axis.set_xlabel("wall time (min)" if x_key == "wall_s" else "step")
        axis.set_ylabel("kNN top-1 (%)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=110)


def summary(runs: list[Run], layers: tuple[str, ...], reference: dict[str, float] | None) -> list[str]:
    """Per label and layer: start, best and last top-1, means over the label's runs."""
    lines = []
    for label in dict.fromkeys(run.label for run in runs):
        group = [run for run in runs if run.label == label]
        cells = []
        for layer in layers:
            start = statistics.fmean(run.points[layer][0][1] for run in group)
            best = statistics.fmean(max(y for _, y in run.points[layer]) for run in group)
            last = statistics.fmean(run.points[layer][-1][1] for run in group)
            gain = f", last - random {last - reference[layer]:+.1f}" if reference else ""
            cells.append(f"{layer} start {start:.1f} best {best:.1f} last {last:.1f}{gain}")
        lines.append(f"{label} ({len(group)} run{'s' * (len(group) > 1)}): " + "; ".join(cells))
    return lines


ACCURACIES = ("disc_acc", "mask_acc", "mask_acc_fake", "rot_acc")  # the pretext tasks' logged accuracies


def table(runs: list[Run], layers: tuple[str, ...]) -> list[str]:
    """Markdown: one line per kNN row of each run (label, seed folder, step, training minutes, kNN per layer) with
    the accuracies of the training row logged at that step ("-" where none was, as at step 0)."""
    accuracy_keys = [key for key in ACCURACIES if any(key in row for run in runs for row in run.rows)]
    lines = ["| row | run | step | minutes | " + " | ".join(f"kNN {layer}" for layer in layers) + " | "
             + " | ".join(f"`{key}`" for key in accuracy_keys) + " |",
             "|---|---|---:|---:|" + "---:|" * (len(layers) + len(accuracy_keys))]
    for run in runs:
        trained = {row["step"]: row for row in run.rows if any(key in row for key in ACCURACIES)}
        for row in run.rows:
            if not any(f"knn_{layer}" in row for layer in layers):
                continue
            logged = trained.get(row["step"], {})
            knn = [f"{row[f'knn_{layer}']:.1f}" if f"knn_{layer}" in row else "-" for layer in layers]
            accuracies = [f"{logged[key]:.2f}" if key in logged else "-" for key in accuracy_keys]
            minutes = f"{row['wall_s'] / 60:.1f}" if "wall_s" in row else "-"
            lines.append(f"| {run.label} | {run.folder.parent.name if run.folder.name == 'run' else run.folder.name} "
                         f"| {row['step']} | {minutes} | " + " | ".join(knn + accuracies) + " |")
    return lines


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        label, sep, value = item.partition("=")
        if not sep or not label.strip() or not value.strip():
            raise TrajectoryError(f"{flag} expects LABEL=VALUE, got {item!r}")
        out.append((label.strip(), value.strip()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=DIR", required=True,
                        help="a run directory (repeatable; the same label for the seeds of one row)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--layers", default=",".join(DEFAULT_LAYERS),
                        help="comma-separated (default conv2,conv3,conv5)")
    parser.add_argument("--random-init", help="knn_checkpoints.py --json output: a dashed line at its random inits")
    parser.add_argument("--offset", action="append", default=[], metavar="LABEL=SECONDS|RUN_DIR",
                        help="start a label's runs this many seconds later, or after that run's last wall_s (e.g. "
                        "the stage-1 run of a stage-2 row)")
    parser.add_argument("--x", choices=("wall", "step"), default="wall", help="x axis (default wall: wall_s)")
    parser.add_argument("--title", default="", help="figure title")
    parser.add_argument("--table", help="also write the kNN rows and the accuracies beside them as a markdown table")
    args = parser.parse_args(argv)
    try:
        layers = tuple(layer.strip() for layer in args.layers.split(",") if layer.strip())
        if not layers:
            raise TrajectoryError("--layers names no layer")
        x_key = "wall_s" if args.x == "wall" else "step"
        offsets = {label: offset_seconds(value) for label, value in _pairs(args.offset, "--offset")}
        runs = [read_run(label, Path(folder).expanduser(), layers, x_key, offsets.get(label, 0.0))
                for label, folder in _pairs(args.run, "--run")]
        unknown = set(offsets) - {run.label for run in runs}
        if unknown:
            raise TrajectoryError(f"--offset names a label no --run has: {', '.join(sorted(unknown))}")
        reference = random_reference(Path(args.random_init).expanduser(), layers) if args.random_init else None
        draw(runs, layers, Path(args.out), x_key, reference, args.title)
        if args.table:
            Path(args.table).write_text("\n".join(table(runs, layers)) + "\n")
    except (TrajectoryError, ValueError, OSError) as err:
        print(f"trajectories: error: {err}", file=sys.stderr)
        return 2
    for line in summary(runs, layers, reference):
        print(line)
    if reference:
        print("random init: " + ", ".join(f"{layer} {value:.1f}" for layer, value in reference.items()
                                          if math.isfinite(value)))
    print(f"chart: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
