"""The one error of the data layer: a path or dataset that cannot be used, with a message that says what to do."""

from __future__ import annotations


class DataError(ValueError):
    """A data path or dataset that cannot be used: the message says what to do."""
