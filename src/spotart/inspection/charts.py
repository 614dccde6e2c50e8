"""The report's charts: training curves from ``metrics.jsonl`` and the per-layer probe chart, as PNG bytes.

Figures are built with matplotlib's object interface (no pyplot), so making a report never opens a
window or touches a global figure state, whatever backend the user's matplotlib is set to.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .probe_results import ProbeResult

NOT_PLOTTED = ("step", "epoch")
# accuracy -> the better constant guess it should beat (None: chance is 0.5)
ACCURACY_CHANCE = {"real_acc": None, "fake_acc": None, "disc_acc": None,
                   "mask_acc": "mask_chance", "mask_acc_fake": "mask_chance_fake"}


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes
    keys: tuple[str, ...]  # the metrics it plots


def figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows where ``key`` is a finite number."""
    points = [(float(r["step"]), float(r[key])) for r in rows
              if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return [s for s, _ in points], [v for _, v in points]


def numeric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric that is a number in some row, in the order the rows first list them."""
    keys: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in NOT_PLOTTED and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)


def _small_multiples(rows: Sequence[dict[str, Any]], keys: Sequence[str], title: str) -> Chart:
    """One panel per metric: losses and rates differ in scale too much to share an axis."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(keys))
    lines = math.ceil(len(keys) / columns)
    figure = Figure(figsize=(4.0 * columns, 2.6 * lines), layout="constrained")
    for i, key in enumerate(keys):
        axes = figure.add_subplot(lines, columns, i + 1)
        steps, values = series(rows, key)
        axes.plot(steps, values, marker="." if len(steps) < 50 else None, linewidth=1.2)
        axes.set_title(key, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return Chart(title, figure_png(figure), tuple(keys))


def _accuracies(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> Chart:
    """Accuracies on one 0..1 axis each, with the chance level each one has to beat drawn dashed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    groups = [[k for k in keys if ACCURACY_CHANCE.get(k, "") is None],  # real/fake: chance 0.5
              [k for k in keys if ACCURACY_CHANCE.get(k)]]  # mask: chance is the better constant guess
    groups = [g for g in groups if g]
    figure = Figure(figsize=(6.0 * len(groups), 3.2), layout="constrained")
    plotted: list[str] = []
    for i, group in enumerate(groups):
        axes = figure.add_subplot(1, len(groups), i + 1)
        for key in group:
            steps, values = series(rows, key)
            line, = axes.plot(steps, values, marker="." if len(steps) < 50 else None, label=key)
            plotted.append(key)
            chance = ACCURACY_CHANCE[key]
            if chance is None:
                continue
            steps, values = series(rows, chance)
            axes.plot(steps, values, linestyle="--", color=line.get_color(), label=f"{chance} (constant guess)")
            plotted.append(chance)
        if any(ACCURACY_CHANCE[k] is None for k in group):
            axes.axhline(0.5, linestyle=":", color="grey", label="chance 0.5")
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Accuracies of the discriminator")
    return Chart("Accuracies of the discriminator", figure_png(figure), tuple(plotted))


def metric_curves(rows: Sequence[dict[str, Any]]) -> list[Chart]:
    """Every numeric metric of the run, grouped: C's losses, R's losses, accuracies, kNN monitor, everything else."""
    keys = numeric_keys(rows)
    accuracies = [k for k in keys if k in ACCURACY_CHANCE]
    chances = {c for c in ACCURACY_CHANCE.values() if c}
    c_losses = [k for k in keys if k.startswith("c_")]
    r_losses = [k for k in keys if k.startswith("r_")]
    knn = [k for k in keys if k.startswith("knn_")]
    grouped = set(accuracies) | chances | set(c_losses + r_losses + knn)
    others = [k for k in keys if k not in grouped]
    charts = []
    if c_losses:
        charts.append(_small_multiples(rows, c_losses, "Losses of the discriminator C"))
    if r_losses:
        charts.append(_small_multiples(rows, r_losses, "Losses of the repair network R"))
    if accuracies:
        charts.append(_accuracies(rows, accuracies))
    if knn:
        charts.append(_small_multiples(rows, knn, "kNN monitor of the features (top-1 %)"))
    if others:
        charts.append(_small_multiples(rows, others, "Speed, schedule and housekeeping"))
    return charts


def probe_chart(results: Sequence[ProbeResult]) -> bytes:
    """Grouped bars: top-1 per layer, one bar per probe."""
    from matplotlib.figure import Figure

    layers = list(dict.fromkeys(layer for result in results for layer in result.top1))
    width = 0.8 / len(results)
    figure = Figure(figsize=(max(5.0, 1.2 * len(layers) + 2), 3.4), layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    for i, result in enumerate(results):
        positions = [j + (i - (len(results) - 1) / 2) * width for j, layer in enumerate(layers) if layer in result.top1]
        values = [result.top1[layer] for layer in layers if layer in result.top1]
        bars = axes.bar(positions, values, width=width, label=result.label)
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
    axes.set_xticks(range(len(layers)), layers)
    axes.set_ylabel("top-1 %")
    axes.set_ylim(0, 1.15 * max(max(result.top1.values()) for result in results))  # room for the bar labels
    axes.set_title("Linear probe on frozen features")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(results), frameon=False)
    return figure_png(figure)
