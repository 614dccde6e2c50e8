"""Checkpoints: atomic save, checked load, every random state, the latest/periodic files.

What a run directory's ``checkpoints/`` holds (format 2):

- ``latest.pt``: everything resume needs (networks, optimiser states, random states), self-contained.
- ``step_XXXXXXX.pt``: periodic snapshots for evaluation. By default the networks only (no optimiser or
  random state: a quarter to a third of the size), and parts that never change during a run (stage 2's frozen
  autoencoder) are not copied into them but kept once in a file beside them (``autoencoder.pt``) and named by
  the snapshot, with a digest; ``load_checkpoint`` puts them back, so readers see one dict either way.
  ``snapshot_optimizer=true`` makes every snapshot a full state instead.
- ``best_knn.pt`` (with ``best_knn.json``): when a kNN monitor runs, the networks at its best step (``best_knn.py``).
- A state is written once: when a snapshot would hold exactly what ``latest.pt`` holds (the final step, or
  every step under ``snapshot_optimizer``), it is a hard link to it, i.e. a second name for the same bytes.

Format-1 checkpoints (everything inline, written before format 2) load unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .rundir import LATEST, RunDir

log = logging.getLogger("spotart")

CHECKPOINT_FORMAT = 2  # 2: snapshots may hold the networks only and name shared parts kept beside them

# Payload entries that stay the same for a whole run, kept once per run directory instead of in every snapshot.
SHARED_PARTS = {"autoencoder": "autoencoder.pt"}  # payload key -> file name in checkpoints/
BEST_KNN_FILE, BEST_KNN_RECORD = "best_knn.pt", "best_knn.json"  # in checkpoints/: the best kNN step (best_knn.py)


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


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated or foreign files fail in many ways
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or not a spotart checkpoint): "
                              f"{type(err).__name__}") from None


def load_checkpoint(path: str | Path, expect_stage: str | None = None, for_resume: bool = False) -> dict[str, Any]:
    """Load with ``weights_only=True``, put back the shared parts a snapshot names, and check that it is the
    kind of checkpoint the caller expects (``for_resume``: one that holds optimiser and random states).

    A shared part whose file is missing is left out and named under ``"missing_parts"``, so that the readers
    that do not need it (probe, export, spot) still work; the ones that do say which file to bring.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    payload = _read(path)
    if not isinstance(payload, dict) or "stage" not in payload:
        raise CheckpointError(f"{path} is not a spotart checkpoint")
    if int(payload.get("format", 1)) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {payload['format']}; this spotart reads up to "
                              f"{CHECKPOINT_FORMAT}: update spotart")
    if expect_stage is not None and payload["stage"] != expect_stage:
        raise CheckpointError(
            f"{path} is a {describe_stage(payload['stage'])} checkpoint; "
            f"a {describe_stage(expect_stage)} checkpoint is needed here"
        )
    if for_resume and not payload.get("resumable", True):
        raise CheckpointError(f"{path} is a snapshot of the networks only (no optimiser state): a run resumes from "
                              "the latest.pt its training wrote")
    _attach_shared_parts(payload, path.parent)
    return payload


def _attach_shared_parts(payload: dict[str, Any], folder: Path) -> None:
    for key, ref in payload.pop("shared_parts", {}).items():
        part_path = folder / ref["file"]
        if not part_path.is_file():
            payload.setdefault("missing_parts", {})[key] = str(part_path)
            continue
        part = _read(part_path)
        if not isinstance(part, dict) or part.get("stage") != "part" or part.get("key") != key:
            raise CheckpointError(f"{part_path} is not the shared {key} part that the snapshot beside it names")
        if state_digest(part["value"]) != ref["sha256"]:
            raise CheckpointError(f"{part_path} is not the {key} this snapshot was trained with (its digest differs): "
                                  "the file was replaced; use the run's latest.pt, which holds its own copy")
        payload[key] = part["value"]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values (not of its file: torch.save's bytes may vary)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def is_optimizer_state(value: Any) -> bool:
    """An ``Optimizer.state_dict()`` (each stage names its optimisers its own way: optimizer, opt_c, opt_r...)."""
    return isinstance(value, dict) and "state" in value and "param_groups" in value


def networks_only(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` without what only resume needs: every optimiser state and the random states."""
    kept = {key: value for key, value in payload.items() if key != "rng" and not is_optimizer_state(value)}
    kept["resumable"] = False
    return kept


class CheckpointManager:
    """``latest.pt`` plus periodic ``step_XXXXXXX.pt``, of which the newest ``keep`` are kept (0: all).

    A snapshot that would hold the same state as ``latest.pt`` (the final step, or any step when
    ``snapshot_optimizer`` is set) is a hard link to it, not a copy. That stays right through pruning and resume:
    ``latest.pt`` is always replaced by a rename (a new file), which leaves the old one alive under its step
    name, and deleting a pruned name never touches the bytes another name still holds. On a file system
    without hard links the snapshot is written out instead.
    """

    def __init__(self, run: RunDir, keep: int, snapshot_optimizer: bool = False) -> None:
        self.run, self.keep, self.snapshot_optimizer = run, keep, snapshot_optimizer
        self._shared_digests: dict[str, str] = {}  # shared parts already on disk in this session

    @property
    def latest(self) -> Path:
        return self.run.checkpoints / LATEST

    def snapshot(self, step: int) -> Path:
        return self.run.checkpoints / f"step_{step:07d}.pt"

    @property
    def best_knn(self) -> Path:
        """The networks at the best kNN step so far (``best_knn.py``); not a ``step_*`` name, so never pruned."""
        return self.run.checkpoints / BEST_KNN_FILE

    @property
    def best_knn_record(self) -> Path:
        return self.run.checkpoints / BEST_KNN_RECORD

    def save_lean(self, path: Path, payload: dict[str, Any]) -> None:
        """A networks-only snapshot of ``payload`` at ``path``, its shared parts named (rank 0 only)."""
        if self.run.enabled:
            save_checkpoint(path, self._lean(payload))

    def save(self, payload: dict[str, Any], step: int, final: bool = False) -> None:
        """``latest.pt`` and the snapshot of ``step``; ``final``: the run's last step."""
        if not self.run.enabled:
            return
        save_checkpoint(self.latest, payload)
        target = self.snapshot(step)
        if final or self.snapshot_optimizer:
            self._link_latest(target, payload)
        else:
            save_checkpoint(target, self._lean(payload))
        old = sorted(self.run.checkpoints.glob("step_*.pt"))[: -self.keep] if self.keep > 0 else []
        for path in old:
            path.unlink(missing_ok=True)

    def _link_latest(self, target: Path, payload: dict[str, Any]) -> None:
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.latest, tmp)
        except OSError as err:  # no hard links here (some network and FAT file systems): a copy, then
            log.debug("hard link %s -> %s failed (%s): writing the snapshot", self.latest, target, err)
            save_checkpoint(target, payload if self.snapshot_optimizer else self._lean(payload))
            return
        os.replace(tmp, target)

    def _lean(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The networks-only snapshot, its shared parts named rather than copied."""
        lean = networks_only(payload)
        refs = {}
        for key, file_name in SHARED_PARTS.items():
            if lean.get(key) is None:
                continue
            refs[key] = {"file": file_name, "sha256": self._store_part(key, file_name, lean.pop(key))}
        if refs:
            lean["shared_parts"] = refs
        return lean

    def _store_part(self, key: str, file_name: str, value: dict[str, torch.Tensor]) -> str:
        """Write the part once per session (checked against the file a resumed run already holds)."""
        digest = state_digest(value)
        if self._shared_digests.get(key) == digest:
            return digest
        path = self.run.checkpoints / file_name
        on_disk = None
        if path.is_file():
            try:
                part = _read(path)
                on_disk = state_digest(part["value"]) if isinstance(part, dict) and "value" in part else None
            except CheckpointError:
                on_disk = None
        if on_disk != digest:
            if key in self._shared_digests:  # written earlier in this session with other values
                raise RuntimeError(f"the {key} changed during the run, but it is stored once as a frozen part")
            save_checkpoint(path, {"stage": "part", "format": CHECKPOINT_FORMAT, "key": key, "value": value})
        self._shared_digests[key] = digest
        return digest
