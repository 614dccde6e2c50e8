"""Reading a stage-2 run directory: its config, its metrics, its checkpoint, its latest training grid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, load_yaml
from ..train.checkpoints import BEST_KNN_FILE, BEST_KNN_RECORD
from ..train.rundir import checkpoints_dir, latest_checkpoint


class ReportError(ValueError):
    """A run directory the report cannot be made from: the message says why."""


@dataclass(frozen=True)
class SpotRun:
    root: Path
    metrics: list[dict[str, Any]]  # metrics.jsonl, one row per logged step
    checkpoint: Path
    latest_grid: Path | None  # the newest images/artifacts_*.png written during training


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every row of ``metrics.jsonl``; a torn last line (a run killed mid-write) is skipped, not fatal."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def best_knn_note(root: Path, shown: Path) -> str | None:
    """One line on the run's best kNN step (``checkpoints/best_knn.json``, written by a monitored run), or None."""
    record_path = checkpoints_dir(root) / BEST_KNN_RECORD
    try:
        record = json.loads(record_path.read_text())
        step, layer, top1 = int(record["step"]), str(record["layer"]), float(record["top1"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    best = record_path.with_name(BEST_KNN_FILE)
    if shown.resolve() == best.resolve():
        return f"These are the networks of the best kNN step so far: step {step} ({layer} kNN top-1 {top1:.1f}%)."
    return (f"The best kNN step so far was step {step} ({layer} kNN top-1 {top1:.1f}%); its networks are in {best}: "
            f"`spotart report {root} --checkpoint {best}` draws them.")


def open_run(root: str | Path, checkpoint: str | Path | None = None) -> SpotRun:
    """The run in ``root``; ``checkpoint`` (default ``checkpoints/latest.pt``) names the networks to show."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ReportError(f"run directory not found: {root}")
    config_path = root / "config.yaml"
    if not config_path.is_file():
        raise ReportError(f"{root} is not a spotart run directory (it has no config.yaml)")
    try:
        config = load_yaml(config_path)
    except ConfigError as err:
        raise ReportError(str(err)) from None
    command = config.get("command")
    if command != "train-spot":
        raise ReportError(f"{root} is a {command or 'unknown'} run; the report needs a stage-2 run (train-spot)")
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ReportError(f"--checkpoint {checkpoint} is not a file")
    else:
        checkpoint = latest_checkpoint(root)
        if not checkpoint.is_file():
            raise ReportError(f"{root} has no checkpoints/latest.pt yet: the report needs the trained networks")
    grids = sorted((root / "images").glob("artifacts_*.png"))
    return SpotRun(root, read_metrics(root / "metrics.jsonl"), checkpoint, grids[-1] if grids else None)
