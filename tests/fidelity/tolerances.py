"""How close spotart must come to the official TF step, array by array, and why.

Every tolerance is derived from the fixtures' own spread (``tolerances.json``: how far TF's result moves between
its oneDNN and Eigen kernels, ``onednn_off``, and when half the input pixels move by one ulp, ``input_ulp``) and from
fp32 rounding; none is tuned to the measured deviation:

    tolerance = SPREAD_FACTOR x TF's own spread for that array  +  FP32_FLOOR

in units of the array's largest magnitude (as the fixtures report their spread). ``FP32_FLOOR`` (2^-19, 16 ulps at
the largest value) covers arrays whose TF spread is zero (scalar losses and L2 terms, which the perturbations left
bit for bit unchanged) and the rounding of sums that PyTorch orders differently. ``SPREAD_FACTOR`` is 4: a second
implementation is one more independent rounding path, so its distance to TF may exceed TF-to-TF by a small factor.

After-step values are compared in units of the learning rate, as the fixtures' README reports them: at t = 1 Adam
moves a weight by lr x g / (|g| + 3.2e-4), so the after-step difference is the gradient's difference seen through
that ratio, at most 2 lr when a small gradient changes sign.

Near-ties of C's max pools (``checks.json``: windows whose two largest inputs are within 1e-4 relative) make TF's own
result jump when its forward moves by one rounding: with Eigen's kernels (``onednn_off``) one pool_2 window picked
the other input and every gradient backward of it moved by up to 4e-2. spotart's forward differs from TF's by the same
order, and in this fixture it breaks one pool_1 near-tie the other way. The tie-resolved replay (``resolve_ties``)
gives those windows TF's two values, and its gradients are held to the spread TF shows *without* a tie flip
(``input_ulp``); the plain replay is held to the spread TF shows *with* one (the larger of the two runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .replay import FIXTURES

SPREAD_FACTOR = 4.0
FP32_FLOOR = 2.0**-19  # 1.9e-6: 16 ulps of fp32 at the array's largest magnitude
LR = 3e-4  # PolynomialDecay:0 at step 0 in both fixtures

# TF's onednn_off run flipped a pool_2 near-tie: in these arrays its spread measures the flip, not rounding
TIE_FLIP_AFFECTED = ("tower_0/gradients/AddN_3:0", "grad/generator/", "grad/discriminator/conv_1/",
                     "grad/discriminator/conv_2/", "generator/", "discriminator/conv_1/", "discriminator/conv_2/")


@lru_cache(maxsize=1)
def _spreads() -> dict[str, dict[str, list[float]]]:
    return json.loads((FIXTURES / "tolerances.json").read_text())["arrays"]


def tf_spread(file: str, key: str, tie_flips: bool) -> tuple[float, float]:
    """TF's own (absolute, relative) spread of ``file:key``; without the runs that flipped a tie unless asked."""
    runs = _spreads().get(f"{file}.npz:{key}", {})
    affected = key.startswith(TIE_FLIP_AFFECTED)
    names = ("onednn_off", "input_ulp") if tie_flips or not affected else ("input_ulp",)
    values = [runs[name] for name in names if name in runs] or [[0.0, 0.0]]
    return max(v[0] for v in values), max(v[1] for v in values)


@dataclass
class Deviation:
    key: str
    deviation: float  # relative to the array's largest magnitude (after-step values: in units of lr)
    tolerance: float
    unit: str

    @property
    def ok(self) -> bool:
        return self.deviation <= self.tolerance

    def __str__(self) -> str:
        return f"{self.key}: {self.deviation:.3g} {self.unit} (tolerance {self.tolerance:.3g})"


def ours_as_stored(key: str, reference: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """spotart's full array reduced as the fixture stores it: ``#slice`` (the first k output channels), ``#sum`` and
    ``#sumsq`` (float64 per output channel over all other axes), or as it is."""
    ours = np.asarray(ours)
    axes = tuple(range(ours.ndim - 1))
    if key.endswith("#slice"):
        return ours[..., : reference.shape[-1]]
    if key.endswith("#sum"):
        return ours.astype(np.float64).sum(axis=axes)
    if key.endswith("#sumsq"):
        return (ours.astype(np.float64) ** 2).sum(axis=axes)
    return ours


def deviation(file: str, key: str, reference: np.ndarray, ours: np.ndarray, tie_flips: bool = False) -> Deviation:
    """How far ``ours`` (full array, official layout) is from the fixture's ``reference`` under ``key``."""
    ours = ours_as_stored(key, reference, ours)
    if reference.shape != ours.shape:
        raise AssertionError(f"{key}: spotart's array has shape {ours.shape}, the fixture's {reference.shape}")
    if reference.dtype == bool:
        return Deviation(key, float(np.count_nonzero(reference != ours)), 0.0, "elements")
    difference = float(np.max(np.abs(ours.astype(np.float64) - reference.astype(np.float64)), initial=0.0))
    spread_abs, spread_rel = tf_spread(file, key, tie_flips)
    if file.endswith("_after"):
        scale = max(float(np.max(np.abs(reference), initial=0.0)), 1.0)
        return Deviation(key, difference / LR, (SPREAD_FACTOR * spread_abs + FP32_FLOOR * scale) / LR, "lr")
    scale = float(np.max(np.abs(reference), initial=0.0)) or 1.0
    return Deviation(key, difference / scale, SPREAD_FACTOR * spread_rel + FP32_FLOOR, "of max")


def compare(file: str, reference: dict[str, np.ndarray], ours: dict[str, np.ndarray], keys: list[str],
            prefix: str = "", tie_flips: bool = False) -> list[Deviation]:
    """Deviations of every key in ``keys`` (fixture keys; ``ours`` is keyed by the official name, plus ``prefix``)."""
    rows = []
    for key in keys:
        name = prefix + key.split("#")[0]
        if name not in ours:
            raise AssertionError(f"the replay has no tensor for the fixture's {file}:{key}")
        rows.append(deviation(file, key, reference[key], ours[name], tie_flips))
    return rows


def failures(rows: list[Deviation]) -> str:
    bad = [str(row) for row in rows if not row.ok]
    return f"{len(bad)} of {len(rows)} arrays beyond tolerance:\n  " + "\n  ".join(bad) if bad else ""
