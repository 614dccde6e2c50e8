"""C in inference mode (moving statistics, no dropout) on the step's C input, before and after the step's statistics."""

from __future__ import annotations

from .replay import fixture
from .tolerances import compare, failures

FILE = "stage2_c_inference"


def test_inference_mode_before_and_after_the_statistics_move(c_inference):
    keys = sorted(fixture(FILE))
    assert {key.split("/")[0] for key in keys} == {"A", "B"}
    rows = compare(FILE, fixture(FILE), c_inference, keys)
    assert not failures(rows), failures(rows)
