"""``spotart reproduce``: the paper's probe table and ablations at CPU scale, on Imagenette-96 or CIFAR-10.

Pretraining uses the train split without labels, probes train on the train split's labels and report top-1 on
val (the role STL-10 plays in the paper, at the same 96 px). Every model gets a stated budget in optimiser steps.
One module per concern:

- ``presets.py``: the presets (sizes, budgets, data) and where their results files are;
- ``rows.py``: the rows (the paper's models, variants, seeds), which rows a command trains, and their configs;
- ``work.py``: the work folder's state (what is done, timing.json, variants.json), which makes every step resumable;
- ``yardstick.py``: the RotNet rows' reference row and their budgets in images and in time;
- ``tables.py``: the results files (json, -seeds.json, md);
- ``runner.py``: training and probing each row at each seed (``Reproduction``, ``run_reproduce``).
"""

from __future__ import annotations

from .presets import PRESETS, Preset, data_folder, eval_split, get_preset, results_path
from .rows import (
    DEFAULT_MODELS,
    MODELS,
    ROTNET_KINDS,
    ModelSpec,
    RowConfigs,
    parse_seeds,
    parse_variant,
    random_trunk_config,
    rows_to_run,
    run_folder,
    seed_of_folder,
    select_models,
)
from .runner import Reproduction, run_reproduce, training_order
from .tables import Tables, describe_machine
from .work import WorkFolder, metrics_rows
from .yardstick import ROTNET_STEP_LIMIT, Yardstick

__all__ = [
    "DEFAULT_MODELS", "MODELS", "PRESETS", "ROTNET_KINDS", "ROTNET_STEP_LIMIT", "ModelSpec", "Preset", "Reproduction",
    "RowConfigs", "Tables", "WorkFolder", "Yardstick", "data_folder", "describe_machine", "eval_split", "get_preset",
    "metrics_rows", "parse_seeds", "parse_variant", "random_trunk_config", "results_path", "rows_to_run",
    "run_folder", "run_reproduce", "seed_of_folder", "select_models", "training_order",
]
