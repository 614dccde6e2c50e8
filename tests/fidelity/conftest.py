"""The fidelity tests need the official fixtures (``../shared/fixtures/official_tf/``, or $SPOTART_OFFICIAL_FIXTURES);
without them every test here is skipped with one line saying where they were looked for. Each replay runs once per
session (a few seconds each)."""

from __future__ import annotations

import pytest

from .replay import FIXTURES, fixtures_present, replay_c_inference, replay_stage1, replay_stage2


def pytest_collection_modifyitems(config, items):
    if fixtures_present():
        return
    skip = pytest.mark.skip(reason=f"the official TF fixtures are not at {FIXTURES}")
    for item in items:
        if "tests/fidelity/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stage2_resolved():
    return replay_stage2(resolve_ties=True)


@pytest.fixture(scope="session")
def stage2_plain():
    return replay_stage2()


@pytest.fixture(scope="session")
def stage1():
    return replay_stage1()


@pytest.fixture(scope="session")
def c_inference():
    return {**replay_c_inference("A"), **replay_c_inference("B")}
