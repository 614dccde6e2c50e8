"""Errors of the evaluation commands.

``EvaluationError`` is a ``ValueError``, so the CLI prints its message as one line without a traceback: it is
raised for inputs the user has to fix (unlabelled folders, mismatched classes, a bad fold file). A changed trunk is
not the user's mistake but a broken guarantee of the probe, so ``TrunkChangedError`` is a ``RuntimeError`` that keeps
its traceback.
"""

from __future__ import annotations


class EvaluationError(ValueError):
    """An evaluation input that cannot be used: the message says what to do."""


class TrunkChangedError(RuntimeError):
    """The frozen network's weights or BatchNorm statistics changed while it was being evaluated."""
