"""How long a training run took, read from the run itself (for ``reproduce`` rows trained outside it).

``metrics.jsonl`` says it in one of two ways:

- ``wall_s``: training seconds since the run started, summed across resumes, on every row (``run_loop``); the
  largest value is the run's time.
- otherwise ``images_per_s`` on each logged row, measured over the steps since the row before: the steps of
  each interval times the batch (``config.yaml``) over that rate gives the interval's seconds. The rate counts
  the images of every process, the batch is per process: under torchrun this undercounts by the number of
  processes, so it is the fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of a killed run
                continue
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
    return rows


def _batch_size(run_dir: Path) -> int | None:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        return int(config["batch_size"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def recorded_training_seconds(run_dir: str | Path) -> tuple[float, str] | None:
    """(seconds, how they were read: "wall_s" or "throughput") from the run's metrics.jsonl; None when it says
    nothing about time."""
    run_dir = Path(run_dir)
    rows = _rows(run_dir)
    walls = [float(row["wall_s"]) for row in rows if isinstance(row.get("wall_s"), (int, float))]
    if walls:
        return max(walls), "wall_s"
    batch = _batch_size(run_dir)
    timed = [row for row in rows if isinstance(row.get("images_per_s"), (int, float)) and row["images_per_s"] > 0]
    if batch is None or not timed:
        return None
    seconds, previous_step = 0.0, 0
    for row in timed:  # in step order: a resumed run's metrics.jsonl is cut back to its checkpoint, so no repeats
        seconds += (int(row["step"]) - previous_step) * batch / float(row["images_per_s"])
        previous_step = int(row["step"])
    return seconds, "throughput"
