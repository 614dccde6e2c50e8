"""The best-kNN snapshot: the networks at the step whose kNN top-1 was highest, kept beside the run's checkpoints.

Why: at small budgets a stage-2 run's features can peak early and fall back. In the budget study of issue 24 the
official preset's kNN top-1 peaks near step 800 of 4,000 and is back near its start at the end, so the last
checkpoint is not the best one. When a kNN monitor runs (``knn_val`` set) and ``keep_best_knn`` is true,
``checkpoints/best_knn.pt`` holds the networks (no optimiser state, like a periodic snapshot) at the step whose best
monitored layer scored highest, step 0's random network included; ``best_knn.json`` beside it names the step, the
layer and every monitored layer's top-1, so nobody has to load the file to learn which step it is.

The monitor's ``knn_val`` chooses the step: a probe on the same images afterwards is optimistic. Monitor a split
that is not reported (e.g. a held-out part of the training folder).

Resume: the record survives in ``best_knn.json``. One from past the step a run resumes at (a crash between the kNN
evaluation and the next checkpoint) is dropped with a log line: the resumed run evaluates that step again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from .checkpoints import CheckpointManager

log = logging.getLogger("spotart")

KNN_PREFIX = "knn_"  # the kNN monitor's metric names: knn_conv2, knn_conv3, ...


def best_layer(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The monitored layer with the highest kNN top-1 in one row of metrics, or None when the row has none."""
    scores = {key[len(KNN_PREFIX):]: value for key, value in metrics.items() if key.startswith(KNN_PREFIX)}
    if not scores:
        return None
    layer = max(scores, key=scores.__getitem__)
    return layer, scores[layer]


class BestKnn:
    """Keeps ``best_knn.pt`` and ``best_knn.json`` up to date as kNN rows come in (rank 0 writes; others no-op)."""

    def __init__(self, manager: CheckpointManager, start_step: int) -> None:
        self.manager = manager
        self.top1 = float("-inf")
        record = self._read_record()
        if record is not None and int(record["step"]) > start_step:
            log.info("best_knn.pt is from step %d, past the step %d this run resumes at: dropped, the resumed run "
                     "measures those steps again", record["step"], start_step)
            for path in (manager.best_knn, manager.best_knn_record):
                path.unlink(missing_ok=True)
            record = None
        if record is not None:
            self.top1 = float(record["top1"])
        elif start_step > 0 and manager.run.enabled:
            log.info("no best_knn.pt from before step %d: the best kNN step is kept from here on", start_step)

    def _read_record(self) -> dict[str, Any] | None:
        path = self.manager.best_knn_record
        if not self.manager.run.enabled or not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            int(record["step"]), float(record["top1"])
        except (ValueError, KeyError, TypeError):
            log.warning("%s cannot be read: the best kNN step is kept anew from here on", path)
            return None
        return record

    def offer(self, step: int, metrics: dict[str, float], payload: Callable[[], dict[str, Any]]) -> bool:
        """Save ``payload()`` as the best snapshot when this row's best layer beats every earlier row's; whether
        it did. Ties keep the earlier step (fewer steps for the same features)."""
        best = best_layer(metrics)
        if best is None or best[1] <= self.top1 or not self.manager.run.enabled:
            return False
        layer, top1 = best
        self.manager.save_lean(self.manager.best_knn, payload())
        record = {"step": step, "layer": layer, "top1": top1,
                  "knn": {key: value for key, value in metrics.items() if key.startswith(KNN_PREFIX)}}
        temporary = self.manager.best_knn_record.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(temporary, self.manager.best_knn_record)  # the record never names a file it does not describe
        self.top1 = top1
        return True
