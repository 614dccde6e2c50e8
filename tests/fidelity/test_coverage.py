"""Every array the fixtures hold is compared by a test here, or loaded as a variable before the step."""

from __future__ import annotations

import json

import numpy as np

from spotart.models import AutoEncoder, Discriminator
from spotart.models.repair import RepairNetwork
from spotart.official import convert_official, export_official, is_bookkeeping, load_into

from .keys import after_keys, step_keys
from .replay import FIXTURES, fixture, fixture_variables


def test_every_listed_array_has_a_comparison():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["arrays"]
    compared = {f"{file}.npz": set() for file in ("stage2_step", "stage1_step")}
    for file in ("stage2_step", "stage1_step"):
        for keys in step_keys(file).values():
            compared[f"{file}.npz"].update(keys)
    for file in ("stage2_after", "stage1_after", "stage2_c_inference", "ops"):
        compared[f"{file}.npz"] = set(after_keys(file))
    for file in ("stage2_before", "stage1_before"):
        compared[f"{file}.npz"] = set(fixture(file))  # test_before_files_load_bit_for_bit
    listed = {(row["file"], row["key"]) for row in manifest}
    assert len(listed) == 585
    missing = sorted(f"{file}:{key}" for file, key in listed if key not in compared.get(file, set()))
    assert not missing, missing


def test_before_files_load_bit_for_bit():
    """Every variable before each step goes into spotart's networks and comes back out unchanged."""
    for file in ("stage2_before", "stage1_before"):
        variables = fixture_variables(file)
        states = convert_official(variables)
        modules = {"autoencoder": AutoEncoder(), "repair": RepairNetwork(),
                   "discriminator": Discriminator(64, padding="tf_same", fc1_bn_scale=False)}
        for part, state in states.items():
            load_into(modules[part], state, part)
        back = export_official({part: modules[part].state_dict() for part in states})
        for name, value in variables.items():
            if is_bookkeeping(name):
                continue
            assert np.array_equal(back[name], value), f"{file}:{name}"
