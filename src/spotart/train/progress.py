"""Progress: throughput, the progress bar and the endless batch iterator a resumed run starts inside."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Throughput:
    """Images per second over the steps since the last call to ``rate``."""

    def __init__(self) -> None:
        self.images, self.start = 0, time.perf_counter()

    def add(self, images: int) -> None:
        self.images += images

    def rate(self) -> float:
        now = time.perf_counter()
        value = self.images / max(now - self.start, 1e-9)
        self.images, self.start = 0, now
        return value


class RunClock:
    """Training seconds since the run started, summed across resumes (``already``: a checkpoint's ``wall_s``).

    Time inside ``paused()`` (the kNN monitor's evaluations) is not counted: it measures the run, not the training.
    """

    def __init__(self, already: float = 0.0) -> None:
        self.already, self.start, self.excluded = already, time.perf_counter(), 0.0

    def seconds(self) -> float:
        return self.already + time.perf_counter() - self.start - self.excluded

    @contextmanager
    def paused(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - start


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True, unit="step")


def batches(loader, sampler, start_step: int, steps_per_epoch: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Endless (epoch, batch) pairs, starting at the batch that ``start_step`` points to."""
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        sampler.set_epoch(epoch, start_batch=offset)
        for batch in loader:
            yield epoch, batch
        epoch, offset = epoch + 1, 0
