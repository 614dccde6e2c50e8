"""The run directory: config.yaml, metrics.jsonl, TensorBoard events and image grids."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import CommonConfig, config_to_dict
from ..outputs import OutputError, check_output_dir
from . import distributed as dist_utils

log = logging.getLogger("spotart")

CHECKPOINTS = "checkpoints"  # the folder of a run directory that CheckpointManager writes
LATEST = "latest.pt"  # in it: everything --resume needs


def checkpoints_dir(root: str | Path) -> Path:
    """A run directory's ``checkpoints/``, named without creating anything (``RunDir`` creates it)."""
    return Path(root).expanduser() / CHECKPOINTS


def latest_checkpoint(root: str | Path) -> Path:
    """A run directory's ``checkpoints/latest.pt``, whether or not it exists yet."""
    return checkpoints_dir(root) / LATEST

class RunDir:
    """``config.yaml``, ``metrics.jsonl``, TensorBoard events, ``checkpoints/``, ``images/``.

    Only rank 0 writes; on other ranks every method is a no-op.
    """

    def __init__(self, root: str | Path, writer_enabled: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.enabled = dist_utils.is_main_process()
        self.checkpoints = checkpoints_dir(self.root)
        self.images = self.root / "images"
        self._tb = None
        if self.enabled:
            check_output_dir(self.root)  # a file, or a path under one: one clear line (the CLI checks first too)
            try:
                for path in (self.root, self.checkpoints, self.images):
                    path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError(f"cannot create the run directory {self.root}: {err.strerror or err}") from None
            if writer_enabled:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.root / "tensorboard"))
                except ImportError:
                    log.warning("tensorboard is not installed: no TensorBoard events are written")

    def write_config(self, cfg: CommonConfig, command: str) -> None:
        if self.enabled:
            data = {"command": command, **config_to_dict(cfg)}
            (self.root / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def log_metrics(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
        with open(self.root / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(clean) + "\n")
        if self._tb is not None:
            step = int(row["step"])
            for key, value in clean.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def truncate_metrics(self, last_step: int) -> None:
        """After a resume, drop rows logged after the checkpoint so the curve has no duplicates."""
        path = self.root / "metrics.jsonl"
        if not self.enabled or not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= last_step]
        path.write_text("".join(line + "\n" for line in kept))

    def save_grid(self, name: str, step: int, grid: torch.Tensor) -> Path | None:
        """``grid`` is a (3, H, W) image in [0, 1]."""
        if not self.enabled:
            return None
        from torchvision.utils import save_image

        path = self.images / f"{name}_{step:07d}.png"
        save_image(grid, path)
        if self._tb is not None:
            self._tb.add_image(name, grid, step)
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
