"""The NaN guard: skip a step with a non-finite loss, give up after too many in a row."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("spotart")

class NonFiniteGuard:
    """Skip a step whose loss is NaN or infinite, with a clear log line; give up after ``patience`` in a row."""

    def __init__(self, patience: int = 20) -> None:
        self.patience, self.in_a_row, self.total = patience, 0, 0

    def ok(self, step: int, losses: dict[str, torch.Tensor]) -> bool:
        bad = [name for name, value in losses.items() if not torch.isfinite(value.detach()).all()]
        if not bad:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        log.warning("step %d: non-finite %s; the update is skipped (%d in a row)", step, ", ".join(bad), self.in_a_row)
        if self.in_a_row >= self.patience:
            raise FloatingPointError(
                f"training diverged: {self.patience} steps in a row had a non-finite loss (last: {', '.join(bad)}). "
                "Lower the learning rate (--set lr=...) or use --set precision=fp32, then --resume."
            )
        return False
