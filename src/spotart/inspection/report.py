"""``spotart report RUN_DIR``: one offline HTML page with this run's versions of the paper's figures.

It rebuilds the networks from the run's latest checkpoint, draws the figures on fixed images with a
fixed damage seed (so two reports of the same checkpoint show the same thing), and adds the training
curves and, when a probe was run, its per-layer results.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..train.stage2 import autoencoder_from_payload
from . import report_sections as sections
from .charts import metric_curves
from .checkpoint import discriminator_from, load_spot_checkpoint
from .fixed_images import fixed_images
from .html_page import page
from .panels import damage_and_repair, real_or_repaired
from .probe_results import find_probes, read_probe
from .run_files import ReportError, best_knn_note, open_run

log = logging.getLogger("spotart")


def build_report(run_dir: str | Path, out: str | Path | None = None, probes: Sequence[str | Path] = (),
                 count: int = 8, seed: int = 0, checkpoint: str | Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) and return its path.

    ``checkpoint``: the networks to draw (any snapshot of the run: latest, periodic, old format); default latest.
    """
    if count < 2:
        raise ReportError(f"--images must be at least 2 (one real, one repaired), got {count}")
    run = open_run(run_dir, checkpoint)
    payload = load_spot_checkpoint(run.checkpoint)
    config = payload["config"]
    size = int(config["image_size"])
    autoencoder = autoencoder_from_payload(payload, str(run.checkpoint), size)
    discriminator = discriminator_from(payload)
    with tempfile.TemporaryDirectory(prefix="spotart-report-") as scratch:
        fixed = fixed_images(config, size, count, Path(scratch))
    log.info("report: %d fixed images from %s", len(fixed.names), "the run's data" if fixed.note is None else
             "a fallback")
    panels = damage_and_repair(autoencoder, payload["repair"], config["drop_rate"], fixed.images, seed)
    mixed = real_or_repaired(autoencoder, payload["repair"], discriminator, config, fixed.images, seed)
    probe_results = [read_probe(path, run.root) for path in find_probes(run.root, probes)]

    notes = [fixed.note] if fixed.note else []
    best = best_knn_note(run.root, run.checkpoint)
    if best:
        notes.append(best)
    if payload["repair"] is None:
        notes.append("This run has no repair network (repair=none): the panels show the damage only.")
    elif config["repair"] != "masked" or config["passes"] != 1:
        notes.append(f"This run was trained with repair={config['repair']}, passes={config['passes']}; the mixed "
                     "grid uses that setting, the damage-and-repair panels run its weights under every rule.")
    body = "".join([
        sections.summary(config, int(payload["step"]), str(run.checkpoint), run.metrics),
        sections.notes(notes),
        sections.mixed_grid(mixed),
        sections.damage_panels(panels),
        sections.curves(metric_curves(run.metrics)),
        sections.training_grid(run.latest_grid, size),
        sections.probes(probe_results),
    ])
    target = Path(out).expanduser() if out else run.root / "report.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page(f"spotart report: {run.root.name}", body), encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write {target}: {err.strerror or err}") from None
    return target
