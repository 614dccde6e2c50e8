"""Stage 1 under configs/official_stl10_ae.yaml against one step of the authors' autoencoder training."""

from __future__ import annotations

from .keys import after_keys, step_keys
from .replay import fixture
from .tolerances import compare, failures

STEP, AFTER = "stage1_step", "stage1_after"


def test_forward_batch_statistics_and_reconstruction(stage1):
    keys = step_keys(STEP)["forward"]
    assert "tower_0/decoder/deconv_5/Tanh:0" in keys and len(keys) == 20
    rows = compare(STEP, fixture(STEP), stage1, keys + step_keys(STEP)["draws"])
    assert not failures(rows), failures(rows)


def test_loss_l2_terms_and_total(stage1):
    keys = step_keys(STEP)["losses"]
    assert len(keys) == 1 + 11 + 2
    rows = compare(STEP, fixture(STEP), stage1, keys)
    assert not failures(rows), failures(rows)
    for key in step_keys(STEP)["constants"]:
        assert stage1[key] == fixture(STEP)[key], key


def test_gradients_reaching_adam(stage1):
    rows = compare(STEP, fixture(STEP), stage1, step_keys(STEP)["gradients"])
    assert len(rows) >= 30
    assert not failures(rows), failures(rows)


def test_parameters_and_statistics_after_the_step(stage1):
    rows = compare(AFTER, fixture(AFTER), stage1, after_keys(AFTER), prefix="after/")
    assert not failures(rows), failures(rows)
