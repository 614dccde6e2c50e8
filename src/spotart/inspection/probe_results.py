"""Reading the results of ``spotart probe`` (its ``probe.json``) for the report.

A probe writes the top-1 of each layer at the top level of ``probe.json`` (``"conv1": 41.2``) and
per-layer details under ``"layers"``. A run directory may hold several probes (say the trained
trunk and a random-init baseline), each in its own folder: the report shows them side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run_files import ReportError

LAYER_NAME = re.compile(r"^(conv|enc)\d+$")  # discriminator layers, or the encoder's for an autoencoder baseline


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    label: str  # how the report names this probe
    top1: dict[str, float]  # layer -> top-1 %, shallow to deep
    details: dict[str, dict[str, Any]]  # layer -> what the probe recorded about it (pooled size, train top-1, ...)
    summary: str  # data, image counts and classes, in one line


def find_probes(run_root: Path, explicit: Sequence[str | Path] = ()) -> list[Path]:
    """The ``--probe`` files when given, else ``RUN/probe.json`` and ``RUN/*/probe.json``."""
    if explicit:
        paths = [Path(p).expanduser() for p in explicit]
        for path in paths:
            if not path.is_file():
                raise ReportError(f"probe results not found: {path}")
        return paths
    candidates = [run_root / "probe.json", *sorted(run_root.glob("*/probe.json"))]
    return [path for path in candidates if path.is_file()]


def read_probe(path: Path, run_root: Path | None = None) -> ProbeResult:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"probe results {path} cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise ReportError(f"probe results {path} hold no per-layer results")
    top1 = {k: float(v) for k, v in data.items()
            if LAYER_NAME.match(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not top1:
        raise ReportError(f"probe results {path} hold no per-layer top-1 (keys conv1..conv5)")
    details = data.get("layers") if isinstance(data.get("layers"), dict) else {}
    where = path.parent.name if run_root is None or path.parent != run_root else "run"
    label = f"{data.get('model') or data.get('init') or 'probe'} ({where})"
    facts = [f"{data[k]} {k}" for k in ("train", "val") if data.get(k)]
    counts = [f"{data[k]} {k.replace('_', ' ')}" for k in ("train_images", "val_images", "classes") if data.get(k)]
    frozen = "trunk unchanged" if data.get("trunk_unchanged") else ""
    summary = "; ".join(part for part in (", ".join(facts), ", ".join(counts), frozen) if part)
    return ProbeResult(path, label, top1, {k: v for k, v in details.items() if isinstance(v, dict)}, summary)
