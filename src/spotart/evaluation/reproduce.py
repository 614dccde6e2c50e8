"""``spotart reproduce``: the paper's probe table and ablations at CPU scale, on Imagenette-96.

Pretraining uses the train split without labels, probes train on the train split's labels and report top-1 on
val (the role STL-10 plays in the paper, at the same 96 px). Every model gets a stated budget in optimiser steps:

- the full method and each ablation of the paper (no repair, unmasked repair, twice through, no mask loss): one
  shared stage-1 autoencoder, then stage 2 with one switch each;
- baselines: the random-init discriminator, the same AlexNet trained with labels (``train-supervised``, the upper
  bound) and the stage-1 encoder's layers;
- a yardstick: RotNet (``train-rotnet``) on the same trunk, once with as many source images as the stage-2 rows see
  (``rotnet``) and once for as long as the full method trained, stage 1 plus stage 2 at the same seed
  (``rotnet_equal_time``: training seconds, ``wall_s`` of the runs' metrics, without the kNN monitor's evaluations).
  ``equal_time_to`` names the row whose budget they match (default ``full``); they take every key of its config that
  RotNet has (data, optimiser, precision, the kNN monitor's, the trunk's init and padding). They run when
  ``--models`` names them, not by default.

All state lives in the work folder and every step is skipped when its output exists: a finished training run has
``trained.json``, an unfinished one continues with ``resume=True``, a finished probe has ``probe.json``. So an
interrupted run, started again with the same command, goes on where it stopped. Wall time is accumulated per model
in ``timing.json`` over all sessions. Results: ``RESULTS/reproduce.json`` (model -> layer -> top-1 %) and
``RESULTS/reproduce.md`` (the table with command, budgets, wall times and machine), rewritten after every model;
the CIFAR-10 preset writes ``reproduce-cifar10.json`` and ``.md`` instead, so both tables can stand side by side.

Two ways to go beyond one run per row, both kept in the work folder so that later commands add to the same table:

- ``seeds``: each model trained and probed once per seed (seed 0 in ``WORK/<model>``, seed k in
  ``WORK/<model>-seed<k>``); the table gives mean ± standard deviation, ``RESULTS/<name>-seeds.json`` every run.
  The shared stage 1 and the encoder row are trained once (seed 0): the seeds measure stage 2 and the probes.
- ``variants``: extra rows of the full method with other train-spot keys (``NAME:KEY=VALUE,...``), from the same
  stage 1, e.g. ``slow_repair:repair_lr_factor=0.3``: a study of one setting without re-training the autoencoder.
  ``config=FILE`` among the keys starts the row from a YAML file of train-spot keys (the preset's data, size,
  batch, steps and checkpointing, then ``--set`` and the row's other keys, override it), e.g.
  ``official_paper_loss:config=configs/official_stl10.yaml,repair_loss=paper``; ``init=random`` makes the row a
  random-init baseline whose trunk takes the file's or the keys' ``disc_init`` and ``disc_padding``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shlex
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import ROTNET_SHARED_KEYS, ConfigError, build_config, config_to_dict
from ..train.device import cpu_has_fast_bf16
from .errors import EvaluationError
from .linear import LinearSettings
from .probe import ProbeOptions, run_probe
from .run_time import recorded_training_seconds
from .supervised import build_supervised_config, train_supervised
from .toydata import write_toy_dataset

log = logging.getLogger("spotart")

IMAGENETTE = "../shared/data/imagenette-96"  # relative to the repository root, where the command is run
CIFAR10 = "../shared/data/cifar10"
EVAL_SPLITS = ("val", "test")  # the evaluation split's folder: imagenette has val/, CIFAR-10 test/
PAPER_IMAGES = 500 * 100_000  # the paper's stage 2: 500 epochs of STL-10's 100k unlabelled images
PAPER_PROBES = {  # METHOD.md: ImageNet linear probes, top-1 conv1..conv5 (a different, 1000-class task)
    "Spot-Artifacts": (19.5, 33.3, 37.9, 38.9, 34.9),
    "random init": (11.6, 17.1, 16.9, 16.3, 14.1),
    "supervised AlexNet": (19.3, 36.3, 44.2, 48.3, 50.5),
}


@dataclass(frozen=True)
class Preset:
    name: str
    image_size: int
    batch_size: int
    ae_steps: int
    spot_steps: int
    supervised_steps: int
    probe_epochs: int
    workers: int
    expected: str  # what it costs, said up front
    data: str = IMAGENETTE  # default data folder (train/ and val/ or test/)
    results_name: str = "reproduce"  # RESULTS/<results_name>.json and .md
    probe_max_train: int | None = None  # probe on a fixed subset of the training split (None: all of it)


PRESETS = {
    "tiny": Preset("tiny", 32, 4, 2, 2, 2, 5, 0, "seconds, on generated toy images: a check of the pipeline only"),
    # 64 px: 4x4 damage grid, ~3x more steps per minute than 96 px (METHOD.md); stage 2 runs at ~1 step/s
    "quick": Preset("quick", 64, 64, 500, 250, 800, 10, 1, "about 45 minutes on 2 CPU cores with AMX"),
    "full": Preset("full", 96, 64, 3000, 2000, 4000, 10, 1, "about 8 hours on 2 CPU cores with AMX"),
    # the study preset of the official-code comparison and the RotNet yardstick: quick's stage 1, 4x its stage 2
    "imagenette-64": Preset("imagenette-64", 64, 64, 500, 1000, 800, 10, 1,
                            "stage 1 about 25 minutes, each stage-2 row about 30 minutes on 2 CPU cores with AMX",
                            results_name="reproduce-imagenette64"),
    # CIFAR-10 at its own 32 px: a 2x2 damage grid and ~9x fewer FLOPs per image than 96 px, so many more steps
    "cifar-quick": Preset("cifar-quick", 32, 128, 1000, 1000, 2000, 10, 1, "about 2 hours on 2 CPU cores with AMX",
                          data=CIFAR10, results_name="reproduce-cifar10", probe_max_train=20_000),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # key in reproduce.json and folder in the work directory
    label: str  # row of the table
    kind: str  # spot | random | supervised | autoencoder | rotnet | rotnet_time
    switches: tuple[str, ...] = ()  # train-spot config switches of an ablation (a variant's may hold config=FILE)

    @property
    def config_file(self) -> str | None:
        """The YAML file a variant starts from (its ``config=FILE`` key), if any."""
        return next((pair.split("=", 1)[1] for pair in self.switches if pair.startswith("config=")), None)

    @property
    def keys(self) -> list[str]:
        """The train-spot ``KEY=VALUE`` pairs of the row, without the variant's own ``config=`` and ``init=``."""
        return [pair for pair in self.switches if pair.split("=", 1)[0] not in VARIANT_KEYS]


MODELS = (
    ModelSpec("full", "(a) full method", "spot"),
    ModelSpec("no_repair", "(b) no repair network (damage only)", "spot", ("repair=none",)),
    ModelSpec("unmasked_repair", "(c) repair output not masked", "spot", ("repair=unmasked",)),
    ModelSpec("twice", "(d) damage and repair twice", "spot", ("passes=2",)),
    ModelSpec("no_mask_loss", "no mask-prediction loss", "spot", ("mask_loss_weight=0",)),
    ModelSpec("random", "random init", "random"),
    ModelSpec("supervised", "supervised AlexNet (labels)", "supervised"),
    ModelSpec("autoencoder", "autoencoder encoder (stage 1)", "autoencoder"),
    ModelSpec("rotnet", "RotNet, as many images as stage 2", "rotnet"),
    ModelSpec("rotnet_equal_time", "RotNet, as long as stages 1 + 2", "rotnet_time"),
)
ROTNET_KINDS = ("rotnet", "rotnet_time")
# what runs without --models: the paper's rows and baselines; the RotNet rows are asked for by name (rotnet_equal_time
# alone trains as long as stage 1 and a stage-2 row together)
DEFAULT_MODELS = tuple(spec for spec in MODELS if spec.kind not in ROTNET_KINDS)
ROTNET_STEP_LIMIT = 10_000_000  # steps bound of a time-budgeted RotNet run: its seconds end it long before


VARIANT_KEYS = ("config", "init")  # keys of a variant that are not train-spot keys
RANDOM_KEYS = ("disc_init", "disc_padding")  # the keys a random-init variant may set: its trunk's scheme


def random_trunk_config(spec: ModelSpec) -> dict[str, str] | None:
    """The init scheme and padding of a random-init row's trunk (None: the paper's random row, PyTorch's init)."""
    if not spec.switches:
        return None
    cfg = build_config("train-spot", spec.config_file, spec.keys)
    return {key: getattr(cfg, key) for key in RANDOM_KEYS}


class Reproduction:
    """One preset's models in one work folder; each ``run_model`` call does only what is not done yet."""

    def __init__(self, preset: Preset, data: Path, work: Path, results: Path, spot_set: list[str],
                 ae_set: list[str], command: str, equal_time_to: str = "full") -> None:
        self.preset, self.work, self.results, self.command = preset, work, results, command
        self.train_dir, self.val_dir = data / "train", eval_split(data)
        self.spot_set, self.ae_set = spot_set, ae_set
        self.timing_path = work / "timing.json"
        self.equal_time_to = equal_time_to  # the stage-2 row whose images and time the RotNet rows match

    # -------------------------------------------------------------------------------------------- bookkeeping
    def timing(self) -> dict[str, dict[str, float]]:
        return json.loads(self.timing_path.read_text()) if self.timing_path.is_file() else {}

    def _timed(self, model: str, part: str, work: Callable[[], Any]) -> Any:
        """Run ``work``; add its wall time to ``timing.json`` even when it is interrupted."""
        start = time.perf_counter()
        try:
            return work()
        finally:
            timing = self.timing()
            entry = timing.setdefault(model, {})
            entry[part] = round(entry.get(part, 0.0) + time.perf_counter() - start, 1)
            self.timing_path.write_text(json.dumps(timing, indent=1))

    def _common(self) -> list[str]:
        p = self.preset
        return [f"data={self.train_dir}", f"image_size={p.image_size}", f"batch_size={p.batch_size}",
                f"num_workers={p.workers}", "checkpoint_every=100", "keep_checkpoints=1",
                f"progress={str(p.name != 'tiny').lower()}"]

    def _train(self, model: str, run_dir: Path, steps: int, train: Callable[[bool], Path]) -> Path:
        """Train once: skip a finished run, resume an unfinished one, restart one that never saved a checkpoint."""
        marker = run_dir / "trained.json"
        if marker.is_file() and json.loads(marker.read_text())["steps"] == steps:
            return Path(json.loads(marker.read_text())["checkpoint"])
        resume = (run_dir / "checkpoints" / "latest.pt").is_file()
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # started but never checkpointed: nothing to keep
        log.info("reproduce: training %s for %d steps%s", model, steps, " (resuming)" if resume else "")
        checkpoint = self._timed(model, "train_s", lambda: train(resume))
        marker.write_text(json.dumps({"steps": steps, "checkpoint": str(checkpoint)}))
        return checkpoint

    # ------------------------------------------------------------------------------------------------ models
    def autoencoder(self) -> Path:
        from ..train.stage1 import train_autoencoder

        cfg = build_config("train-ae", set_pairs=self._common() + [f"steps={self.preset.ae_steps}", *self.ae_set])
        run_dir = self.work / "autoencoder" / "run"
        return self._train("autoencoder", run_dir, cfg.steps,
                           lambda resume: train_autoencoder(cfg, str(run_dir), resume))

    def checkpoint_for(self, spec: ModelSpec, seed: int = 0) -> str | None:
        run_dir = self.work / run_folder(spec, seed) / "run"
        seeded = [f"seed={seed}"]
        if spec.kind == "autoencoder":
            return str(self.autoencoder())
        if spec.kind == "spot":
            from ..train.stage2 import train_spot
            from .knn import monitor_from_config

            cfg = self.spot_config(spec, seed, self.autoencoder())
            return str(self._train(run_folder(spec, seed), run_dir, cfg.steps,
                                   lambda resume: train_spot(cfg, str(run_dir), resume, monitor_from_config(cfg))))
        if spec.kind == "supervised":
            cfg = build_supervised_config(self._common() + [f"steps={self.preset.supervised_steps}", *seeded])
            return str(self._train(run_folder(spec, seed), run_dir, cfg.steps,
                                   lambda resume: train_supervised(cfg, str(run_dir), resume)))
        if spec.kind in ROTNET_KINDS:
            return str(self.rotnet(spec, seed, run_dir))
        return None  # random init: nothing to train

    def spot_config(self, spec: ModelSpec, seed: int, autoencoder: Path | str = ""):
        """The train-spot config of a stage-2 row at ``seed``: a variant's YAML file first, if it has one, then the
        preset's keys, ``--set``, and the row's own keys last, so that no --set can undo what the row is about."""
        pairs = (self._common() + [f"steps={self.preset.spot_steps}", f"autoencoder={autoencoder}", f"seed={seed}",
                                   *self.spot_set, *spec.keys])
        return build_config("train-spot", spec.config_file, pairs)

    # ----------------------------------------------------------------------------------- the RotNet yardstick
    def reference(self) -> ModelSpec:
        """The stage-2 row that the RotNet rows match (``equal_time_to``): the full method unless told otherwise."""
        known = {spec.name: spec for spec in (*MODELS, *self.variants())}
        spec = known.get(self.equal_time_to)
        if spec is None or spec.kind != "spot":
            rows = ", ".join(name for name, other in known.items() if other.kind == "spot")
            raise EvaluationError(f"--equal-time-to {self.equal_time_to!r} is not a stage-2 row of this work folder "
                                  f"(choose from {rows})")
        return spec

    def reference_config(self, seed: int) -> dict[str, Any]:
        """The resolved train-spot config of the reference row at ``seed``: its run's config.yaml when it has run,
        else the config it will run with."""
        reference = self.reference()
        saved = self.work / run_folder(reference, seed) / "run" / "config.yaml"
        if saved.is_file():
            return yaml.safe_load(saved.read_text())
        return config_to_dict(self.spot_config(reference, seed))

    def rotnet_pairs(self, spec: ModelSpec, seed: int) -> list[str]:
        """train-rotnet keys of a RotNet row: every key of the reference row's config that RotNet has (data,
        augmentation, optimiser, precision, the kNN monitor's, the trunk's init and padding; the stage-2 keys mean
        nothing to it), then the row's budget: the reference's steps, or its time with an unreachable step count."""
        reference = self.reference_config(seed)
        settings = {key: f"{key}={_setting(value)}" for key, value in reference.items() if key in ROTNET_SHARED_KEYS}
        # this command's --set keys win: a reference trained earlier without the kNN monitor still gives a monitored
        # RotNet when knn_val is given now; one pair per key keeps the logged command readable
        for pair in self.spot_set:
            key = pair.partition("=")[0].strip().replace("-", "_")
            if key in ROTNET_SHARED_KEYS:
                settings[key] = pair
        pairs = [*settings.values(), f"seed={seed}"]
        if spec.kind == "rotnet":
            return [*pairs, f"steps={reference['steps']}"]
        seconds, _ = self.time_budget(seed)
        return [*pairs, f"steps={ROTNET_STEP_LIMIT}", f"max_seconds={seconds:.1f}"]

    def time_budget(self, seed: int) -> tuple[float, str]:
        """Training seconds of the shared stage 1 plus the reference row's stage 2 at ``seed``, and how they were
        found; a clear error when either run is missing or unfinished."""
        reference = self.reference()
        parts = []
        for folder in ("autoencoder", run_folder(reference, seed)):
            seconds, source = self.training_seconds(folder)
            parts.append((folder, seconds, source))
        total = sum(seconds for _, seconds, _ in parts)
        return total, " + ".join(f"{folder} {seconds:.0f} s ({source})" for folder, seconds, source in parts)

    def training_seconds(self, folder: str) -> tuple[float, str]:
        """Training seconds of the finished run in ``WORK/<folder>/run``: its last ``wall_s`` (training alone), else
        (a run logged before ``wall_s`` existed) its ``train_s`` in timing.json."""
        run_dir = self.work / folder / "run"
        rows = metrics_rows(run_dir / "metrics.jsonl")
        saved = run_dir / "config.yaml"
        finished = (run_dir / "trained.json").is_file() or (
            bool(rows) and saved.is_file() and rows[-1].get("step") == yaml.safe_load(saved.read_text()).get("steps"))
        if not finished:
            raise EvaluationError(f"rotnet_equal_time needs the finished {folder} run in {run_dir} (its training time "
                                  f"is the budget): run --models {folder.partition('-seed')[0]} first")
        walls = [row["wall_s"] for row in rows if "wall_s" in row]
        if walls:
            return float(walls[-1]), "wall_s"
        train_s = self.timing().get(folder, {}).get("train_s")
        if train_s:
            return float(train_s), "timing.json"
        raise EvaluationError(f"the training time of {run_dir} is unknown: its metrics.jsonl has no wall_s and "
                              f"{self.timing_path} no train_s for {folder}")

    def rotnet(self, spec: ModelSpec, seed: int, run_dir: Path) -> Path:
        from ..train.rotnet import train_rotnet
        from .knn import monitor_from_config

        pairs = self.rotnet_pairs(spec, seed)
        cfg = build_config("train-rotnet", set_pairs=pairs)
        command = "spotart train-rotnet --out " + shlex.quote(str(run_dir)) + "".join(
            f" --set {shlex.quote(pair)}" for pair in pairs)
        if spec.kind == "rotnet_time":
            log.info("reproduce: %s trains for %.0f s: %s", run_folder(spec, seed), cfg.max_seconds,
                     self.time_budget(seed)[1])
        checkpoint = self._train(run_folder(spec, seed), run_dir, cfg.steps,
                                 lambda resume: train_rotnet(cfg, str(run_dir), resume, monitor_from_config(cfg)))
        (run_dir / "command.txt").write_text(command + "\n")
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
        return self._timed(run_folder(spec, seed), "probe_s",
                           lambda: run_probe(str(self.train_dir), str(self.val_dir), probe_dir, checkpoint, init,
                                             options))

    def probes(self, spec: ModelSpec) -> dict[int, dict[str, Any]]:
        """Every finished probe of this model in the work folder, by seed."""
        found: dict[int, dict[str, Any]] = {}
        for folder in [self.work / spec.name, *self.work.glob(f"{spec.name}-seed*")]:
            seed = seed_of_folder(spec, folder.name)
            if seed is not None and (folder / "probe" / "probe.json").is_file():
                found[seed] = json.loads((folder / "probe" / "probe.json").read_text())
        return dict(sorted(found.items()))

    def variants(self, new: tuple[ModelSpec, ...] = ()) -> tuple[ModelSpec, ...]:
        """The variants of this work folder (``variants.json``) plus ``new``; a name keeps its first meaning."""
        path = self.work / "variants.json"
        known = json.loads(path.read_text()) if path.is_file() else {}
        for spec in new:
            if known.get(spec.name, list(spec.switches)) != list(spec.switches):
                raise EvaluationError(f"variant {spec.name!r} was run in {self.work} with "
                                      f"{', '.join(known[spec.name])}; give {', '.join(spec.switches)} another name")
            known[spec.name] = list(spec.switches)
        if new:
            path.write_text(json.dumps(known, indent=1))
        return tuple(parse_variant(f"{name}:{','.join(switches)}") for name, switches in known.items())

    # ----------------------------------------------------------------------------------------------- results
    def spot_budget(self, spec: ModelSpec) -> tuple[int, int]:
        """Steps and batch of a stage-2 row: as its run recorded them, else as ``--set`` and its keys ask."""
        saved = self.work / spec.name / "run" / "config.yaml"
        if saved.is_file():
            cfg = yaml.safe_load(saved.read_text())
            return int(cfg["steps"]), int(cfg["batch_size"])
        values = {"steps": self.preset.spot_steps, "batch_size": self.preset.batch_size}
        for pair in (*self.spot_set, *spec.keys):  # the row's own keys come last and win
            key, _, value = pair.partition("=")
            if key.strip() in values:
                values[key.strip()] = int(value)
        return values["steps"], values["batch_size"]

    def budget(self, spec: ModelSpec) -> str:
        p = self.preset
        if spec.kind == "spot":
            steps, batch = self.spot_budget(spec)
            images = steps * batch
            return (f"stage 2: {steps} steps x {batch} ({images:,} images, "
                    f"1/{PAPER_IMAGES // images:,} of the paper's)")
        if spec.kind == "supervised":
            return f"{p.supervised_steps} steps x {p.batch_size} with labels"
        if spec.kind == "autoencoder":
            return f"stage 1: {p.ae_steps} steps x {p.batch_size}"
        if spec.kind in ROTNET_KINDS:
            return self.rotnet_budget(spec)
        return "none"

    def rotnet_budget(self, spec: ModelSpec) -> str:
        """Images, or seconds and the steps they bought per seed, as the runs recorded them."""
        reference = self.equal_time_to
        if spec.kind == "rotnet":
            saved = self.work / spec.name / "run" / "config.yaml"
            if saved.is_file():
                cfg = yaml.safe_load(saved.read_text())
                steps, batch = int(cfg["steps"]), int(cfg["batch_size"])
            else:
                steps, batch = self.spot_budget(self.reference())
            return f"{steps} steps x {batch} ({steps * batch:,} images, each in 4 rotations: those of {reference})"
        reached = []
        for folder in sorted(self.work.glob(f"{spec.name}*"), key=lambda path: seed_of_folder(spec, path.name) or 0):
            seed, saved = seed_of_folder(spec, folder.name), folder / "run" / "config.yaml"
            rows = metrics_rows(folder / "run" / "metrics.jsonl")
            if seed is None or not saved.is_file() or not rows:
                continue
            cfg = yaml.safe_load(saved.read_text())
            reached.append(f"seed {seed}: {float(cfg['max_seconds']):.0f} s, {rows[-1]['step']} steps x "
                           f"{cfg['batch_size']}")
        return (f"training time of stage 1 + {reference} stage 2 at the same seed"
                + (f" ({'; '.join(reached)})" if reached else ""))

    def write_results(self, selected: tuple[ModelSpec, ...], wall_s: float) -> dict[str, dict[str, float]]:
        """The table of the selected models and of any other model already probed in this work folder (so that
        runs of different ``--models`` subsets add up to one table), in the paper's row order, variants last.
        Each cell is the mean over the seeds probed so far."""
        candidates = (*MODELS, *self.variants())
        found_runs = {spec.name: self.probes(spec) for spec in candidates}  # each probe.json read once
        specs = tuple(spec for spec in candidates if spec in selected or found_runs[spec.name])
        runs = {spec.name: found_runs[spec.name] for spec in specs}
        per_seed = {name: {str(seed): {layer: probe[layer] for layer in probe["layers"]}
                           for seed, probe in found.items()}
                    for name, found in runs.items() if found}
        table = {name: {layer: round(statistics.fmean(run[layer] for run in seeds.values()), 2)
                        for layer in next(iter(seeds.values()))} for name, seeds in per_seed.items()}
        self.results.mkdir(parents=True, exist_ok=True)
        name = self.preset.results_name
        (self.results / f"{name}.json").write_text(json.dumps(table, indent=2))
        (self.results / f"{name}-seeds.json").write_text(json.dumps(per_seed, indent=2))
        (self.results / f"{name}.md").write_text(self.markdown(specs, runs, wall_s))
        return table

    def train_seconds(self, folder: str, timing: dict[str, dict[str, float]]) -> float:
        """A row's training time: the larger of reproduce's clock (timing.json, set-up included, so the larger
        when reproduce trained the whole run) and what the run recorded about itself (metrics.jsonl: the larger
        when some or all of it was trained outside reproduce, which then timed only a resume that had no work)."""
        recorded = recorded_training_seconds(self.work / folder / "run")
        return max(timing.get(folder, {}).get("train_s", 0.0), recorded[0] if recorded else 0.0)

    def row_seconds(self, spec: ModelSpec, timing: dict[str, dict[str, float]]) -> float:
        """Training and probing of every seed of a row."""
        folders = {key for key in timing if seed_of_folder(spec, key) is not None}
        folders |= {path.name for path in self.work.glob(f"{spec.name}*")
                    if seed_of_folder(spec, path.name) is not None}
        return sum(self.train_seconds(folder, timing)
                   + sum(value for part, value in timing.get(folder, {}).items() if part != "train_s")
                   for folder in folders)

    def markdown(self, specs: tuple[ModelSpec, ...], runs: dict[str, dict[int, dict]], wall_s: float) -> str:
        p, timing = self.preset, self.timing()
        ae_time = self.train_seconds("autoencoder", timing)
        total = sum(sum(parts.values()) for parts in timing.values())
        probes = [probe for found in runs.values() for probe in found.values()]
        train_images = probes[0]["train_images"] if probes else "?"
        val_images = probes[0]["val_images"] if probes else "?"
        several = any(len(found) > 1 for found in runs.values())
        lines = [
            f"### CPU-scale reproduction, preset `{p.name}` ({p.image_size} px)",
            "",
            f"- command: `{self.command}`",
            f"- machine: {describe_machine()}",
            f"- wall time: {_minutes(total)} in all sessions together ({_minutes(wall_s)} in the last one); "
            f"expected {p.expected}",
            f"- data: `{self.train_dir}` for pretraining without labels and for the probes' training "
            f"({train_images} images), `{self.val_dir}` for top-1 ({val_images} images)",
            f"- shared stage 1 (all stage-2 rows start from it): autoencoder {p.ae_steps} steps x {p.batch_size} "
            f"({_minutes(ae_time)})",
            "- probes: linear classifier per frozen layer on features average-pooled to about 9,000 dimensions, "
            f"{p.probe_epochs} epochs of Adam, weight decay 1e-3 (`spotart probe`)",
            "",
            "| model | budget | seeds | wall time | conv1 | conv2 | conv3 | conv4 | conv5 |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for spec in specs:
            found = runs.get(spec.name, {})
            seconds = self.row_seconds(spec, timing)
            layers = next(iter(found.values()))["layers"] if found else ()
            cells = [_cell([probe[layer] for probe in found.values()]) for layer in layers] or ["pending"] * 5
            label = spec.label + {"autoencoder": " ¹", "rotnet": " ²", "rotnet_time": " ²"}.get(spec.kind, "")
            seeds = ", ".join(map(str, found)) or "-"
            lines.append(f"| {label} | {self.budget(spec)} | {seeds} | {_minutes(seconds) if seconds else '-'} | "
                         + " | ".join(cells) + " |")
        dims = next((probe["layers"] for probe in probes if probe["model"] != "autoencoder"), None)
        lines.append("")
        if several:
            lines.append("Cells with several seeds: mean ± sample standard deviation over the seeds listed; wall time "
                         "is their sum. The shared stage 1 is the same for every seed.")
        if any(spec.kind == "autoencoder" for spec in specs):
            lines.append("¹ the encoder's five layers (32/64/128/256/512 channels) in the conv1..conv5 columns.")
        if any(spec.kind in ROTNET_KINDS for spec in specs):
            lines.append(self.rotnet_note(tuple(spec for spec in specs if spec.kind in ROTNET_KINDS)))
        if dims:
            lines.append("Pooled dimensions: " + ", ".join(f"{layer} {info['pooled']}" for layer, info in dims.items())
                         + ". Wall time per row: its own training and probe (stage-2 rows without the shared stage 1).")
        paper = "; ".join(f"{name} {' / '.join(map(str, values))}" for name, values in PAPER_PROBES.items())
        lines.append(f"For scale, the paper's ImageNet probes (1000 classes, full budget): {paper}.")
        return "\n".join(lines) + "\n"


    def rotnet_note(self, specs: tuple[ModelSpec, ...]) -> str:
        """The footnote of the RotNet rows: what they are, how their budgets are counted, their exact commands."""
        lines = ["² RotNet (Gidaris et al., ICLR 2018; `spotart train-rotnet`) on the same conv1..conv5, starting "
                 "from the network the random-init row of its seed probes. Budgets count source images (each step "
                 "sees all four rotations of a batch); time budgets are training seconds (`wall_s` in metrics.jsonl: "
                 "without the kNN monitor's evaluations and start-up) of the shared stage 1 plus the "
                 f"`{self.equal_time_to}` row's stage 2 at the same seed. RotNet's published ImageNet probes (full "
                 "budget): 18.8 / 31.7 / 38.7 / 38.2 / 36.5. Commands (seed 0):"]
        for spec in specs:
            saved = self.work / spec.name / "run" / "command.txt"
            if saved.is_file():
                lines.append(f"`{spec.name}`: `{saved.read_text().strip()}`")
        return "\n".join(lines[:1] + [f"- {line}" for line in lines[1:]])


def _setting(value: Any) -> str:
    """A config value as ``--set`` takes it back (lists comma-separated, booleans true/false)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_setting(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def metrics_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl, [] when there is none."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cell(values: list[float]) -> str:
    """One seed: its top-1; several: mean ± sample standard deviation."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    accel = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    bf16 = ", bf16 autocast (AMX/AVX512-BF16)" if cpu_has_fast_bf16() else ""
    return f"{cpu}, {cores} cores{bf16}, {accel}, torch {torch.__version__}, Python {platform.python_version()}"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def parse_variant(text: str) -> ModelSpec:
    """``NAME:KEY=VALUE[,KEY=VALUE...]``: a row of the full method with these train-spot keys (``config=FILE``: from
    that YAML file first; ``init=random``: a random-init row whose trunk takes ``disc_init`` and ``disc_padding``)."""
    name, sep, body = text.partition(":")
    name = name.strip()
    switches = tuple(pair.strip() for pair in body.split(",") if pair.strip())
    if not sep or not switches or not all("=" in pair for pair in switches):
        raise EvaluationError(f"a variant is NAME:KEY=VALUE[,KEY=VALUE...], e.g. slow_repair:repair_lr_factor=0.3; "
                              f"got {text!r}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*", name) or any(name == spec.name for spec in MODELS):
        raise EvaluationError(f"variant name {name!r} must be letters, digits, '_' or '.', start with a letter, and "
                              f"not be one of the paper's models ({', '.join(spec.name for spec in MODELS)})")
    spec = ModelSpec(name, "", "spot", switches)
    init = next((pair.split("=", 1)[1] for pair in switches if pair.startswith("init=")), "checkpoint")
    if init not in ("checkpoint", "random"):
        raise EvaluationError(f"variant {name!r}: init is 'random' (a random-init row) or absent, got {init!r}")
    extra = [pair for pair in spec.keys if pair.split("=", 1)[0].strip() not in RANDOM_KEYS]
    if init == "random" and extra:
        raise EvaluationError(f"variant {name!r}: a random-init row takes only {', '.join(RANDOM_KEYS)} (and "
                              f"config=FILE), not {', '.join(extra)}")
    try:
        build_config("train-spot", spec.config_file, spec.keys)
    except ConfigError as err:
        raise EvaluationError(f"variant {name!r}: {err}") from None
    if init == "random":
        described = ", ".join(pair for pair in switches if not pair.startswith("init="))
        return ModelSpec(name, f"random init + {described}" if described else "random init", "random", switches)
    return ModelSpec(name, f"full method + {', '.join(switches)}", "spot", switches)


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); each seed once, in the order given."""
    if not text:
        return (0,)
    try:
        seeds = tuple(dict.fromkeys(int(item) for item in text.split(",") if item.strip()))
    except ValueError:
        raise EvaluationError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise EvaluationError(f"--seeds takes non-negative integers, e.g. 0,1,2; got {text!r}")
    return seeds


def run_folder(spec: ModelSpec, seed: int) -> str:
    """The work folder of one model and seed: seed 0 keeps the model's name, so older work folders still count."""
    return spec.name if seed == 0 else f"{spec.name}-seed{seed}"


def seed_of_folder(spec: ModelSpec, folder: str) -> int | None:
    """The seed whose work folder (or ``timing.json`` key) is ``folder``, the inverse of ``run_folder``; None when
    ``folder`` belongs to no seed of ``spec``."""
    if folder == spec.name:
        return 0
    match = re.fullmatch(re.escape(spec.name) + r"-seed(\d+)", folder)
    return int(match.group(1)) if match else None


def select_models(names: str | None, variants: tuple[ModelSpec, ...] = ()) -> tuple[ModelSpec, ...]:
    """The models named (the paper's, or variants known in the work folder), in the order asked for."""
    if not names:
        return DEFAULT_MODELS
    known = {spec.name: spec for spec in (*MODELS, *variants)}
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise EvaluationError(f"unknown model {unknown[0]!r}: choose from {', '.join(known)}")
    return tuple(known[name] for name in dict.fromkeys(wanted))


def data_folder(preset: Preset, data: str | None, work: Path) -> Path:
    """The folder with ``train/`` and ``val/``; the tiny preset generates its own toy images."""
    if preset.name == "tiny" and not data:
        root = work / "data"
        if not (root / "val").is_dir():
            write_toy_dataset(root, train_per_class=8, val_per_class=4, classes=3, size=40)
        return root
    root = Path(data or preset.data).expanduser()
    if not (root / "train").is_dir() or not any((root / split).is_dir() for split in EVAL_SPLITS):
        raise FileNotFoundError(f"{root} must hold train/ and val/ (or test/) class folders (the {preset.name} "
                                f"preset reads {preset.data} from the repository root by default; pass --data DIR)")
    return root


def eval_split(root: Path) -> Path:
    """The split that top-1 is measured on: ``val/``, else ``test/``."""
    return next((root / split for split in EVAL_SPLITS if (root / split).is_dir()), root / EVAL_SPLITS[0])


def run_reproduce(preset: str, data: str | None = None, work: str | None = None, results: str | None = None,
                  models: str | None = None, spot_set: list[str] | None = None, ae_set: list[str] | None = None,
                  command: str = "spotart reproduce", seeds: str | None = None,
                  variants: list[str] | None = None, equal_time_to: str = "full") -> dict[str, dict[str, float]]:
    """Train and probe every selected model and seed that is not done yet; write and return the results table.

    ``models`` defaults to all the paper's models, or to none of them when ``variants`` are given (then only the
    variants run); ``seeds`` is a comma-separated list (default "0")."""
    if preset not in PRESETS:
        raise EvaluationError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    new_variants = tuple(parse_variant(text) for text in variants or [])
    seed_list = parse_seeds(seeds)
    work_dir = Path(work or f"benchmarks/runs/reproduce-{chosen.name}")
    results_dir = Path(results or (work_dir / "results" if chosen.name == "tiny" else "benchmarks/results"))
    work_dir.mkdir(parents=True, exist_ok=True)
    repro = Reproduction(chosen, data_folder(chosen, data, work_dir), work_dir, results_dir, list(spot_set or []),
                         list(ae_set or []), command, equal_time_to)
    known_variants = repro.variants(new_variants)
    repro.reference()  # a bad --equal-time-to is said before any training
    specs = select_models(models, known_variants) if models or not new_variants else ()
    specs += tuple(spec for spec in new_variants if spec not in specs)
    log.info("reproduce: preset %s (%s), %d models x %d seeds, work folder %s", chosen.name, chosen.expected,
             len(specs), len(seed_list), work_dir)
    start = time.perf_counter()
    table: dict[str, dict[str, float]] = {}
    for seed in seed_list:  # every model at the first seed before any at the next: a whole table comes first
        for spec in specs:
            repro.run_model(spec, seed)
            table = repro.write_results(specs, time.perf_counter() - start)
    stem = results_dir / chosen.results_name
    print(stem.with_suffix(".md").read_text())
    print(f"results: {stem.with_suffix('.json')}, {stem.with_suffix('.md')}")
    return table
