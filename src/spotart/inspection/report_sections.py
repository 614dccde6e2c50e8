"""The sections of the run report, each a function from computed results to HTML."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .charts import Chart, probe_chart
from .html_page import image, table, text
from .images import cells_to_pil, image_to_pil, png_bytes
from .panels import DamagePanels, MixedGrid
from .probe_results import ProbeResult

DISPLAY_SIDE = 96  # small images are shown enlarged by a whole factor, so each pixel stays a sharp block


def display_width(image_size: int) -> int:
    return image_size * max(1, math.ceil(DISPLAY_SIDE / image_size))


def picture(tensor: torch.Tensor, alt: str) -> str:
    """A (3, S, S) image in [-1, 1]."""
    return image(png_bytes(image_to_pil(tensor)), alt, display_width(tensor.shape[-1]), tile=True)


def mask_picture(cells: torch.Tensor, size: int, alt: str) -> str:
    """A (1, g, g) mask or probability map in [0, 1], drawn at the image size (white = kept)."""
    return image(png_bytes(cells_to_pil(cells[0], size)), alt, display_width(size), tile=True)


def summary(config: dict[str, Any], step: int, checkpoint: str, rows: Sequence[dict[str, Any]]) -> str:
    size = int(config["image_size"])
    grid = size // 16
    facts = (f"Stage-2 run at step {step}: {size} px images ({grid}x{grid} cells), repair <b>{text(config['repair'])}"
             f"</b>, drop rate {config['drop_rate']}, {config['passes']} pass(es), data <code>{text(config['data'])}"
             f"</code>. Networks from <code>{text(checkpoint)}</code>.")
    if not rows:
        return f"<p>{facts}</p><p class=\"note\">metrics.jsonl has no rows yet: no curves.</p>"
    latest: dict[str, Any] = {}
    for row in rows:  # some rows carry only some metrics (the kNN monitor logs its own)
        latest.update(row)
    values = [[text(k), f"{v:.4g}"] for k, v in latest.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")]
    return (f"<p>{facts}</p><p>Last logged value of each metric (up to step {latest['step']}); each accuracy is "
            "worth reading against its constant guess (<code>mask_chance*</code>, 0.5 for real/fake):</p>"
            + table(["metric", "value"], values))


def notes(lines: Sequence[str]) -> str:
    return "".join(f'<p class="note">{text(line)}</p>' for line in lines)


def mixed_grid(grid: MixedGrid) -> str:
    size = grid.shown.shape[-1]
    judged_real = grid.real_probability > 0.5
    correct = int((judged_real == grid.is_real).sum())
    mask_correct = ((grid.predicted_keep > 0.5).float() == grid.true_keep).float().mean()
    always_kept = grid.true_keep.mean()
    heads, shown, true, predicted = ["what C sees"], ["image"], ["true keep mask"], ["predicted keep mask"]
    for i in range(grid.shown.shape[0]):
        kind = "reconstruction" if grid.is_real[i] else "repaired"
        wrong = "" if bool(judged_real[i]) == bool(grid.is_real[i]) else " wrong"
        heads.append(f'<span class="{"real" if grid.is_real[i] else "fake"}{wrong}">{kind}<br>'
                     f"P(real) {float(grid.real_probability[i]):.2f}</span>")
        shown.append(picture(grid.shown[i], kind))
        true.append(mask_picture(grid.true_keep[i], size, "true keep mask"))
        predicted.append(mask_picture(grid.predicted_keep[i], size, "predicted keep mask"))
    rows = [heads, shown, true, predicted]
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        "<h2>Real or repaired?</h2>"
        "<p>The frozen autoencoder's reconstructions (what the discriminator C learns to call real) mixed with "
        "repaired decodings of damaged features (fake). For each: C's probability that it is real, the true keep "
        "mask (white = kept; all white for a reconstruction) and C's predicted keep probability per cell.</p>"
        f"<table>{body}</table>"
        f'<p class="caption">C labels {correct} of {grid.shown.shape[0]} images correctly (red: wrong); its masks get '
        f"{float(mask_correct):.0%} of the cells right (always guessing \"kept\": {float(always_kept):.0%}).</p>"
    )


def damage_panels(panels: DamagePanels) -> str:
    size = panels.inputs.shape[-1]
    columns: list[tuple[str, Callable[[int], str]]] = [
        ("input", lambda i: picture(panels.inputs[i], "input")),
        ("reconstruction", lambda i: picture(panels.reconstruction[i], "reconstruction")),
        ("keep mask", lambda i: mask_picture(panels.keep_mask[i], size, "keep mask")),
        ("damaged, no repair", lambda i: picture(panels.damaged[i], "damaged decoding")),
    ]
    if panels.repaired is not None:
        columns += [
            ("full repair", lambda i: picture(panels.repaired[i], "full repair")),
            ("unmasked repair", lambda i: picture(panels.unmasked[i], "unmasked repair")),
            ("twice through", lambda i: picture(panels.twice[i], "twice through")),
            ("kept in both passes", lambda i: mask_picture(panels.twice_keep_mask[i], size, "kept in both passes")),
        ]
    rows = [[render(i) for _, render in columns] for i in range(panels.inputs.shape[0])]
    explain = (
        "<p>Each row: one image with one fixed keep mask (white = kept). <i>Damaged, no repair</i> decodes the "
        "damaged features (dropped cells filled with the average of their neighbours) through the frozen decoder "
        "alone. <i>Full repair</i> adds the trained repair network, which may change only dropped cells. "
        "<i>Unmasked repair</i> runs the same weights without that restriction, and <i>twice through</i> damages and "
        "repairs the repaired image once more with a second mask (the paper's ablations c and d, here with this "
        "run's weights rather than separately trained models).</p>"
    )
    return "<h2>Damage and repair</h2>" + explain + table([name for name, _ in columns], rows, klass="panels")


def curves(charts: Sequence[Chart]) -> str:
    if not charts:
        return "<h2>Training curves</h2><p>No metrics logged yet.</p>"
    parts = [f'<figure>{image(chart.png, chart.title)}<figcaption class="caption">{text(", ".join(chart.keys))}'
             "</figcaption></figure>" for chart in charts]
    return "<h2>Training curves</h2>" + "".join(parts)


def training_grid(path: Path | None, image_size: int) -> str:
    """The newest grid the training loop wrote, enlarged like the other tiles."""
    if path is None:
        return ""
    with Image.open(path) as grid:
        width = grid.width * display_width(image_size) // image_size
    return (f"<h2>Latest training grid</h2><p>Written during training (<code>images/{text(path.name)}</code>). Rows: "
            "input, reconstruction (real), repaired (fake), true keep mask, predicted keep probability.</p>"
            + image(path.read_bytes(), "latest training grid", width, tile=True))


def probes(results: Sequence[ProbeResult]) -> str:
    if not results:
        return ("<h2>Linear probe</h2><p>No probe results in this run directory (<code>probe.json</code> or "
                "<code>*/probe.json</code>); pass <code>--probe FILE</code> to include some.</p>")
    layers = list(dict.fromkeys(layer for result in results for layer in result.top1))
    pooled = {layer: next((r.details[layer]["pooled"] for r in results
                           if "pooled" in r.details.get(layer, {})), "") for layer in layers}
    rows = [[text(layer), text(pooled[layer])]
            + [f"{r.top1[layer]:.2f}" if layer in r.top1 else "" for r in results] for layer in layers]
    header = ["layer", "pooled features"] + [f"top-1 % {r.label}" for r in results]
    sources = "".join(f"<li><code>{text(r.path)}</code>: {text(r.summary)}</li>" for r in results)
    return ("<h2>Linear probe</h2><p>Linear classifiers on each frozen layer.</p>" + table(header, rows)
            + image(probe_chart(results), "probe top-1 per layer") + f"<ul class=\"caption\">{sources}</ul>")
