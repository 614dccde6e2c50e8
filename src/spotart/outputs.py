"""Checking an output path before a command starts work: one clear line instead of a traceback later.

A command's ``--out`` (or ``--work``, ``--results``, ``--out-dir``) is either a folder it creates and fills, or a
file it writes. Either way the path must be creatable and writable, and a folder must not already hold a run
of another kind (``spotart train-spot --out`` pointed at a stage-1 run would otherwise be told to ``--resume``).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import yaml


class OutputError(ValueError):
    """An output path a command cannot use: the message names the flag, the path and why."""


VOC_RUN = "voc"  # the kind of a VOC transfer run folder (it has options.json)


def run_kind(folder: Path) -> str | None:
    """The kind of run a folder holds: the training command in its config.yaml, ``voc`` for a VOC transfer run,
    or None for a folder that holds no run."""
    config = folder / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError):
            data = None
        return str(data.get("command", "unknown")) if isinstance(data, dict) else "unknown"
    if (folder / "options.json").is_file() and (folder / "checkpoints").is_dir():
        return VOC_RUN
    return None


def _existing_ancestor(path: Path) -> Path:
    """The nearest of ``path`` and its parents that exists (the one a ``mkdir -p`` would start from)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _check_creatable(path: Path, flag: str, what: str) -> None:
    """``path`` does not exist yet: its nearest existing parent must be a writable folder."""
    base = _existing_ancestor(path.parent if what == "file" else path)
    if not base.is_dir():
        raise OutputError(f"{flag} {path}: {base} is a file, so no {what} can be made under it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot create it, {base} is not writable")


def check_output_dir(path: str | Path, flag: str = "--out", accept: Collection[str] | None = None) -> Path:
    """A folder the command may create or write into; ``accept``: the run kinds it may already hold
    (None: any, e.g. a probe written into a training run; empty: none)."""
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{flag} {path} is a file, not a folder: choose a folder (it is created if missing)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {path} is not writable")
        kind = run_kind(path)
        if accept is not None and kind is not None and kind not in accept:
            not_that = f", not a {' or '.join(sorted(accept))} run" if accept else ""
            raise OutputError(f"{flag} {path} holds a {kind} run{not_that}: choose another {flag}")
    else:
        _check_creatable(path, flag, "folder")
    return path


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """A file the command may write (its folder is created if missing)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder: give a file name inside it")
    if path.exists():
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {path} is not writable")
    else:
        _check_creatable(path, flag, "file")
    return path
