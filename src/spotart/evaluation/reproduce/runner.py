"""The runner of ``spotart reproduce``: train (if needed) and probe each row at each seed, then rewrite the tables.

Every step is skipped when its output exists (``work.py``), so the same command started again goes on where it
stopped. Within a seed the RotNet rows run after the others, so that a reference row named anywhere in ``--models``
is trained before the rows that match it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ...config import build_config
from ..errors import EvaluationError
from ..linear import LinearSettings
from ..probe import ProbeOptions, run_probe
from ..supervised import train_supervised
from .presets import Preset, data_folder, eval_split, get_preset, results_folder, results_path, work_folder
from .rows import (
    ROTNET_KINDS,
    ModelSpec,
    RowConfigs,
    parse_seeds,
    parse_variant,
    random_trunk_config,
    rows_to_run,
    run_folder,
)
from .tables import Tables
from .work import WorkFolder
from .yardstick import Yardstick

log = logging.getLogger("spotart")


class Reproduction:
    """One preset's rows in one work folder; each ``run_model`` call does only what is not done yet. The parts:
    ``configs`` (each row's training config), ``folder`` (the work folder's state), ``yardstick`` (the RotNet rows'
    reference and budgets) and ``tables`` (the results files)."""

    def __init__(self, preset: Preset, data: Path, work: Path, results: Path, spot_set: list[str],
                 ae_set: list[str], command: str, equal_time_to: str = "full", ae_config: str | None = None) -> None:
        self.preset, self.work, self.results, self.command = preset, work, results, command
        self.train_dir, self.val_dir = data / "train", eval_split(data)
        self.configs = RowConfigs(preset, self.train_dir, tuple(spot_set), tuple(ae_set), ae_config)
        self.folder = WorkFolder(work)
        self.yardstick = Yardstick(self.folder, self.configs, equal_time_to)
        self.tables = Tables(preset, self.folder, self.configs, self.yardstick, results, self.val_dir, command)

    # ------------------------------------------------------------------------------------------------ models
    def autoencoder(self) -> Path:
        from ...train.stage1 import train_autoencoder

        cfg = self.configs.autoencoder()
        run_dir = self.work / "autoencoder" / "run"
        return self.folder.train_once("autoencoder", run_dir, cfg.steps,
                                      lambda resume: train_autoencoder(cfg, str(run_dir), resume))

    def check_stage1(self) -> None:
        """Refuse a stage 1 in the work folder trained with other keys than ``--ae-config``/``--ae-set`` ask:
        reusing it would silently ignore them, training it again would change every row already trained on it."""
        saved = self.folder.saved_config("autoencoder")
        conflicts = self.configs.stage1_conflicts(saved) if saved is not None else []
        if conflicts:
            folder = self.work / "autoencoder"
            raise EvaluationError(
                f"the shared stage 1 in {folder} was trained with other keys than --ae-config/--ae-set ask "
                f"({'; '.join(conflicts)}): give another --work, or move {folder} away to train it again")

    def checkpoint_for(self, spec: ModelSpec, seed: int = 0) -> str | None:
        run_dir, folder = self.folder.run_dir(spec, seed), run_folder(spec, seed)
        if spec.kind == "autoencoder":
            return str(self.autoencoder())
        if spec.kind == "spot":
            from ...train.stage2 import train_spot
            from ..knn import monitor_from_config

            cfg = self.configs.spot(spec, seed, self.autoencoder())
            return str(self.folder.train_once(
                folder, run_dir, cfg.steps,
                lambda resume: train_spot(cfg, str(run_dir), resume, monitor_from_config(cfg))))
        if spec.kind == "supervised":
            cfg = self.configs.supervised(seed)
            return str(self.folder.train_once(folder, run_dir, cfg.steps,
                                              lambda resume: train_supervised(cfg, str(run_dir), resume)))
        if spec.kind in ROTNET_KINDS:
            return str(self.rotnet(spec, seed, run_dir))
        return None  # random init: nothing to train

    def rotnet(self, spec: ModelSpec, seed: int, run_dir: Path) -> Path:
        from ...train.rotnet import train_rotnet
        from ..knn import monitor_from_config

        pairs = self.yardstick.pairs(spec, seed)
        cfg = build_config("train-rotnet", set_pairs=pairs)
        if spec.kind == "rotnet_time":
            log.info("reproduce: %s trains for %.0f s: %s", run_folder(spec, seed), cfg.max_seconds,
                     self.yardstick.time_budget(seed)[1])
        checkpoint = self.folder.train_once(
            run_folder(spec, seed), run_dir, cfg.steps,
            lambda resume: train_rotnet(cfg, str(run_dir), resume, monitor_from_config(cfg)))
        (run_dir / "command.txt").write_text(self.yardstick.command(run_dir, pairs) + "\n")
        return checkpoint

    def run_model(self, spec: ModelSpec, seed: int = 0) -> dict[str, Any] | None:
        """Train (if needed) and probe one model at one seed; None for the encoder at seeds other than 0."""
        if spec.kind == "autoencoder" and seed != 0:
            log.info("reproduce: the autoencoder is the shared stage 1, trained once (seed 0); skipping seed %d", seed)
            return None
        probe_dir = self.work / run_folder(spec, seed) / "probe"
        if (probe_dir / "probe.json").is_file():
            return json.loads((probe_dir / "probe.json").read_text())
        checkpoint = self.checkpoint_for(spec, seed)
        # the probe's seed (random init, training subset, held-out split) follows the model's: a seed's spread
        # then includes everything that a re-run with another seed would change
        options = ProbeOptions(image_size=self.preset.image_size, max_train=self.preset.probe_max_train,
                               linear=LinearSettings(epochs=self.preset.probe_epochs), workers=self.preset.workers,
                               keep_features=False, progress=self.preset.name != "tiny", seed=seed,
                               random_config=random_trunk_config(spec) if spec.kind == "random" else None)
        init = "random" if spec.kind == "random" else "checkpoint"
        return self.folder.timed(run_folder(spec, seed), "probe_s",
                                 lambda: run_probe(str(self.train_dir), str(self.val_dir), probe_dir, checkpoint, init,
                                                   options))

    # --------------------------------------------------------------- the parts' answers, under their old names
    def spot_budget(self, spec: ModelSpec) -> tuple[int, int]:
        return self.tables.spot_budget(spec)

    def training_seconds(self, folder: str) -> tuple[float, str]:
        return self.yardstick.training_seconds(folder)

    def train_seconds(self, folder: str, timing: dict[str, dict[str, float]]) -> float:
        return self.folder.train_seconds(folder, timing)

    def row_seconds(self, spec: ModelSpec, timing: dict[str, dict[str, float]]) -> float:
        return self.folder.row_seconds(spec, timing)

    def markdown(self, specs: tuple[ModelSpec, ...], runs: dict[str, dict[int, dict]], wall_s: float) -> str:
        return self.tables.markdown(specs, runs, wall_s)


def training_order(specs: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
    """The rows of one seed in the order they run: the RotNet rows after the rows they may be matched to."""
    return (tuple(spec for spec in specs if spec.kind not in ROTNET_KINDS)
            + tuple(spec for spec in specs if spec.kind in ROTNET_KINDS))


def run_reproduce(preset: str, data: str | None = None, work: str | None = None, results: str | None = None,
                  models: str | None = None, spot_set: list[str] | None = None, ae_set: list[str] | None = None,
                  command: str = "spotart reproduce", seeds: str | None = None,
                  variants: list[str] | None = None, equal_time_to: str = "full",
                  ae_config: str | None = None) -> dict[str, dict[str, float]]:
    """Train and probe every selected model and seed that is not done yet; write and return the results table.

    ``variants`` are defined (and remembered in the work folder); ``models`` decides what trains: the paper's rows
    or variants it names, by default this command's variants, or all the paper's models when there are none
    (:func:`~.rows.rows_to_run`). ``seeds`` is a comma-separated list (default "0")."""
    chosen = get_preset(preset)
    new_variants = tuple(parse_variant(text) for text in variants or [])
    seed_list = parse_seeds(seeds)
    work_dir, results_dir = work_folder(chosen, work), results_folder(chosen, work, results)
    work_dir.mkdir(parents=True, exist_ok=True)
    repro = Reproduction(chosen, data_folder(chosen, data, work_dir), work_dir, results_dir, list(spot_set or []),
                         list(ae_set or []), command, equal_time_to, ae_config)
    known_variants = repro.folder.variants(new_variants)
    repro.check_stage1()  # before any training, like a bad --equal-time-to below
    repro.yardstick.reference()  # a bad --equal-time-to is said before any training
    specs = rows_to_run(models, new_variants, known_variants)
    repro.yardstick.check(specs, seed_list)  # so is a reference that rotnet_equal_time needs and nothing trains
    defined = [spec.name for spec in new_variants if spec not in specs]
    if defined:
        log.info("reproduce: %s defined, not trained (--models leaves %s out)", ", ".join(defined),
                 "it" if len(defined) == 1 else "them")
    log.info("reproduce: preset %s (%s), %d models x %d seeds, work folder %s", chosen.name, chosen.expected,
             len(specs), len(seed_list), work_dir)
    start = time.perf_counter()
    table: dict[str, dict[str, float]] = {}
    for seed in seed_list:  # every model at the first seed before any at the next: a whole table comes first
        for spec in training_order(specs):
            repro.run_model(spec, seed)
            table = repro.tables.write(specs, time.perf_counter() - start)
    stem = results_path(chosen, work, results, "md")
    print(stem.read_text())
    print(f"results: {stem.with_suffix('.json')}, {stem}")
    return table
