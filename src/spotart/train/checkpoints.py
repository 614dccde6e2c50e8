"""Checkpoints: atomic save, checked load, every random state, the latest/periodic files."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .rundir import RunDir

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here: the message says why."""


def rng_state(extra: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state, in types that ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, gen in (extra or {}).items():
        state[f"gen_{name}"] = gen.get_state()
    return state


def set_rng_state(state: dict[str, Any], extra: dict[str, torch.Generator] | None = None) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, gen in (extra or {}).items():
        if f"gen_{name}" in state:
            gen.set_state(state[f"gen_{name}"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomic: write to a temporary file, then rename, so a crash never leaves a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


# each checkpoint kind as the user knows it: by the command that wrote it
STAGE_NAMES = {"autoencoder": "stage-1 (train-ae)", "spot": "stage-2 (train-spot)", "supervised": "train-supervised",
               "rotnet": "train-rotnet"}


def describe_stage(stage: str) -> str:
    return STAGE_NAMES.get(stage, stage)


def load_checkpoint(path: str | Path, expect_stage: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True`` and check that it is the kind of checkpoint the caller expects."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated or foreign files fail in many ways
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a spotart checkpoint): "
                              f"{type(err).__name__}") from None
    if not isinstance(payload, dict) or "stage" not in payload:
        raise CheckpointError(f"{path} is not a spotart checkpoint")
    if expect_stage is not None and payload["stage"] != expect_stage:
        raise CheckpointError(
            f"{path} is a {describe_stage(payload['stage'])} checkpoint; "
            f"a {describe_stage(expect_stage)} checkpoint is needed here"
        )
    return payload


class CheckpointManager:
    """``latest.pt`` plus periodic ``step_XXXXXXX.pt``, of which the newest ``keep`` are kept."""

    def __init__(self, run: RunDir, keep: int) -> None:
        self.run, self.keep = run, keep

    @property
    def latest(self) -> Path:
        return self.run.checkpoints / "latest.pt"

    def save(self, payload: dict[str, Any], step: int, periodic: bool) -> None:
        if not self.run.enabled:
            return
        save_checkpoint(self.latest, payload)
        if periodic:
            save_checkpoint(self.run.checkpoints / f"step_{step:07d}.pt", payload)
            old = sorted(self.run.checkpoints.glob("step_*.pt"))[: -self.keep] if self.keep > 0 else []
            for path in old:
                path.unlink(missing_ok=True)
