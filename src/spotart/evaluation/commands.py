"""CLI commands of the evaluation package (registered by ``spotart.cli``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the ``spotart`` parser."""
