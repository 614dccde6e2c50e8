"""``spotart --version`` and ``make help``."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess

import pytest

from spotart.cli import main

from .helpers import REPO


def test_version_is_the_installed_distribution_s(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"spotart {importlib.metadata.version('spotart')}"


def test_the_source_tree_and_the_package_metadata_agree():
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert importlib.metadata.version("spotart") == declared


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_with_one_line():
    makefile = (REPO / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    done = subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {}
    for line in done.stdout.splitlines():
        if line.strip() and not line.startswith("usage"):
            target, _, text = line.strip().partition(" ")
            listed[target] = text.strip()
    assert set(listed) == phony
    assert all(listed.values()), listed
