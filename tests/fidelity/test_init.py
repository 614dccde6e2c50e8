"""The official initialisers (FIDELITY.md D3, D4, D14): spotart's draws against the statistics of TF's own draws
(``manifest.json`` ``init_stats``: mean, std, min and max of each unrounded initial kernel of the fixture)."""

from __future__ import annotations

import json

import numpy as np
import torch

from spotart.models import AutoEncoder, Discriminator
from spotart.models.repair import RepairNetwork
from spotart.official import export_official

from .replay import FIXTURES


def _spotart_draws() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    modules = {"autoencoder": AutoEncoder(init="official"), "repair": RepairNetwork(init="official"),
               "discriminator": Discriminator(64, init="official", padding="tf_same", fc1_bn_scale=False)}
    return export_official({part: module.state_dict() for part, module in modules.items()})


def test_official_inits_draw_what_tf_draws():
    stats = json.loads((FIXTURES / "manifest.json").read_text())["init_stats"]
    ours = _spotart_draws()
    checked = 0
    for stage in ("stage1", "stage2"):
        for name, tf in stats[stage].items():
            weights = ours[name].astype(np.float64)
            count = weights.size
            assert list(weights.shape) == tf["shape"], name
            # sampling error of a standard deviation: about std / sqrt(2n); five of those, plus 0.5 % for the
            # difference between a truncated normal's and a uniform's fourth moments at small n
            assert abs(weights.std() / tf["std"] - 1) < 5 / np.sqrt(2 * count) + 5e-3, (name, weights.std(), tf["std"])
            assert abs(weights.mean()) < 5 * tf["std"] / np.sqrt(count), name
            # the same support: truncated at 2 std (variance scaling) or the Glorot bound; the largest draw of n
            # lies within a few percent of it for n in the hundreds or more
            bound = max(abs(tf["min"]), abs(tf["max"]))
            assert 0.9 * bound < np.abs(weights).max() <= bound * 1.01, (name, np.abs(weights).max(), bound)
            checked += 1
    assert checked == 10 + 10 + 11  # the autoencoder, R, C
