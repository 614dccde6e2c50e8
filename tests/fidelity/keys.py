"""Every array of the fixtures, sorted into what a test compares it as (``test_coverage.py`` proves none is left)."""

from __future__ import annotations

from .replay import fixture

LOSS_MARKERS = ("tower_0/value", "Regularizer/l2_regularizer", "total_loss", "tower_0/add_2:0", "control_dependency")
CONSTANTS = ("PolynomialDecay:0", "adam/beta1", "adam/beta2", "adam/epsilon")
# the fixture's random draws, injected into spotart's step (compared to what the step then used)
DRAWS = ("tower_0/fifo_queue_Dequeue:0", "tower_0/pixel_dropout/random_uniform/RandomUniform:0",
         "tower_0/pixel_dropout/Floor:0", "tower_0/discriminator/Dropout/dropout_1/GreaterEqual:0")


def _is_loss(key: str) -> bool:
    return any(marker in key for marker in LOSS_MARKERS)


def _is_gradient(key: str) -> bool:
    return key.startswith("grad/") or key == "tower_0/gradients/AddN_3:0"


def step_keys(file: str) -> dict[str, list[str]]:
    """A ``*_step`` file's keys by group: draws, forward, losses, gradients, constants."""
    groups: dict[str, list[str]] = {"draws": [], "forward": [], "losses": [], "gradients": [], "constants": []}
    for key in sorted(fixture(file)):
        if key in DRAWS:
            groups["draws"].append(key)
        elif key in CONSTANTS:
            groups["constants"].append(key)
        elif _is_gradient(key):
            groups["gradients"].append(key)
        elif _is_loss(key):
            groups["losses"].append(key)
        else:
            groups["forward"].append(key)
    return groups


def after_keys(file: str) -> list[str]:
    return sorted(fixture(file))
