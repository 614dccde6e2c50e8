"""The work folder of ``spotart reproduce``: what is done, how long it took, and the variants it knows.

All state lives in the work folder and every step is skipped when its output exists: a finished training run has
``trained.json``, an unfinished one continues with ``resume=True``, a finished probe has ``probe.json``. So an
interrupted run, started again with the same command, goes on where it stopped. Wall time is accumulated per run
folder in ``timing.json`` over all sessions; ``variants.json`` keeps each variant's meaning.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ...train.rundir import latest_checkpoint
from ..errors import EvaluationError
from ..run_time import recorded_training_seconds
from .rows import ModelSpec, parse_variant, run_folder, seed_of_folder

log = logging.getLogger("spotart")


class WorkFolder:
    """``WORK/<model>[-seed<k>]/{run,probe}``, ``timing.json`` and ``variants.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.timing_path = root / "timing.json"

    def run_dir(self, spec: ModelSpec, seed: int = 0) -> Path:
        return self.root / run_folder(spec, seed) / "run"

    def saved_config(self, folder: str) -> dict[str, Any] | None:
        """The resolved config a run in ``WORK/<folder>/run`` was started with, None when it has not run."""
        saved = self.root / folder / "run" / "config.yaml"
        return yaml.safe_load(saved.read_text()) if saved.is_file() else None

    # ------------------------------------------------------------------------------------------- bookkeeping
    def timing(self) -> dict[str, dict[str, float]]:
        return json.loads(self.timing_path.read_text()) if self.timing_path.is_file() else {}

    def timed(self, folder: str, part: str, work: Callable[[], Any]) -> Any:
        """Run ``work``; add its wall time to ``timing.json`` even when it is interrupted."""
        start = time.perf_counter()
        try:
            return work()
        finally:
            timing = self.timing()
            entry = timing.setdefault(folder, {})
            entry[part] = round(entry.get(part, 0.0) + time.perf_counter() - start, 1)
            self.timing_path.write_text(json.dumps(timing, indent=1))

    def train_once(self, folder: str, run_dir: Path, steps: int, train: Callable[[bool], Path]) -> Path:
        """Train once: skip a finished run, resume an unfinished one, restart one that never saved a checkpoint."""
        marker = run_dir / "trained.json"
        if marker.is_file() and json.loads(marker.read_text())["steps"] == steps:
            return Path(json.loads(marker.read_text())["checkpoint"])
        resume = latest_checkpoint(run_dir).is_file()
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # started but never checkpointed: nothing to keep
        log.info("reproduce: training %s for %d steps%s", folder, steps, " (resuming)" if resume else "")
        checkpoint = self.timed(folder, "train_s", lambda: train(resume))
        marker.write_text(json.dumps({"steps": steps, "checkpoint": str(checkpoint)}))
        return checkpoint

    def finished(self, folder: str) -> bool:
        """The run in ``WORK/<folder>/run`` reached its last step: reproduce marked it, or (trained outside
        reproduce) its metrics.jsonl reached the steps of its config.yaml."""
        run_dir = self.root / folder / "run"
        if (run_dir / "trained.json").is_file():
            return True
        rows, saved = metrics_rows(run_dir / "metrics.jsonl"), self.saved_config(folder)
        return bool(rows) and saved is not None and rows[-1].get("step") == saved.get("steps")

    def probes(self, spec: ModelSpec) -> dict[int, dict[str, Any]]:
        """Every finished probe of this model in the work folder, by seed."""
        found: dict[int, dict[str, Any]] = {}
        for folder in [self.root / spec.name, *self.root.glob(f"{spec.name}-seed*")]:
            seed = seed_of_folder(spec, folder.name)
            if seed is not None and (folder / "probe" / "probe.json").is_file():
                found[seed] = json.loads((folder / "probe" / "probe.json").read_text())
        return dict(sorted(found.items()))

    def variants(self, new: tuple[ModelSpec, ...] = ()) -> tuple[ModelSpec, ...]:
        """The variants of this work folder (``variants.json``) plus ``new``; a name keeps its first meaning."""
        path = self.root / "variants.json"
        known = json.loads(path.read_text()) if path.is_file() else {}
        for spec in new:
            if known.get(spec.name, list(spec.switches)) != list(spec.switches):
                raise EvaluationError(f"variant {spec.name!r} was run in {self.root} with "
                                      f"{', '.join(known[spec.name])}; give {', '.join(spec.switches)} another name")
            known[spec.name] = list(spec.switches)
        if new:
            path.write_text(json.dumps(known, indent=1))
        return tuple(parse_variant(f"{name}:{','.join(switches)}") for name, switches in known.items())

    # ------------------------------------------------------------------------------------------------ time
    def train_seconds(self, folder: str, timing: dict[str, dict[str, float]]) -> float:
        """A row's training time: the larger of reproduce's clock (timing.json, set-up included, so the larger
        when reproduce trained the whole run) and what the run recorded about itself (metrics.jsonl: the larger
        when some or all of it was trained outside reproduce, which then timed only a resume that had no work)."""
        recorded = recorded_training_seconds(self.root / folder / "run")
        return max(timing.get(folder, {}).get("train_s", 0.0), recorded[0] if recorded else 0.0)

    def row_seconds(self, spec: ModelSpec, timing: dict[str, dict[str, float]]) -> float:
        """Training and probing of every seed of a row."""
        folders = {key for key in timing if seed_of_folder(spec, key) is not None}
        folders |= {path.name for path in self.root.glob(f"{spec.name}*")
                    if seed_of_folder(spec, path.name) is not None}
        return sum(self.train_seconds(folder, timing)
                   + sum(value for part, value in timing.get(folder, {}).items() if part != "train_s")
                   for folder in folders)


def metrics_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl, [] when there is none."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
