"""The rows of ``spotart reproduce``: the paper's models, variants, seeds, which rows an invocation trains, and the
training config of each row.

- the full method and each ablation of the paper (no repair, unmasked repair, twice through, no mask loss): one
  shared stage-1 autoencoder, then stage 2 with one switch each;
- baselines: the random-init discriminator, the same AlexNet trained with labels (``train-supervised``, the upper
  bound) and the stage-1 encoder's layers;
- the RotNet yardstick (``rotnet``, ``rotnet_equal_time``; see ``yardstick.py``), run when ``--models`` names them.

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

``--variant`` defines a row (remembered in ``WORK/variants.json``); ``--models`` decides which rows train: a variant
that ``--models`` leaves out is defined, not trained, e.g. only to be ``--equal-time-to``'s reference. Without
``--models`` the ``--variant`` rows train, or the paper's rows when there are none (:func:`rows_to_run`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import ConfigError, build_config, config_class, config_to_dict, load_yaml, parse_set_args
from ..errors import EvaluationError
from ..supervised import build_supervised_config
from .presets import Preset


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

VARIANT_KEYS = ("config", "init")  # keys of a variant that are not train-spot keys
RANDOM_KEYS = ("disc_init", "disc_padding")  # the keys a random-init variant may set: its trunk's scheme


def random_trunk_config(spec: ModelSpec) -> dict[str, str] | None:
    """The init scheme and padding of a random-init row's trunk (None: the paper's random row, PyTorch's init)."""
    if not spec.switches:
        return None
    cfg = build_config("train-spot", spec.config_file, spec.keys)
    return {key: getattr(cfg, key) for key in RANDOM_KEYS}


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


def rows_to_run(models: str | None, new_variants: tuple[ModelSpec, ...],
                known_variants: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
    """The rows this invocation trains and probes: those ``--models`` names (the paper's rows or any variant known in
    the work folder, this command's included); without ``--models``, this command's ``--variant`` rows, or the
    paper's rows when it has none. A ``--variant`` that ``--models`` leaves out is defined, not trained."""
    if models:
        return select_models(models, known_variants)
    return new_variants or DEFAULT_MODELS


# train-ae keys that change how a run is logged, saved or fed, not what it learns: a later command may differ in them
BOOKKEEPING_KEYS = frozenset({"data_root", "download", "num_workers", "log_every", "image_every", "checkpoint_every",
                              "keep_checkpoints", "snapshot_optimizer", "progress"})


@dataclass(frozen=True)
class RowConfigs:
    """The training config of each row: the preset's data and budgets, ``--set`` / ``--ae-config`` / ``--ae-set``,
    the row's keys."""

    preset: Preset
    train_dir: Path
    spot_set: tuple[str, ...] = ()
    ae_set: tuple[str, ...] = ()
    ae_config: str | None = None  # a train-ae YAML for the shared stage 1, e.g. configs/official_stl10_ae.yaml

    def common(self) -> list[str]:
        p = self.preset
        return [f"data={self.train_dir}", f"image_size={p.image_size}", f"batch_size={p.batch_size}",
                f"num_workers={p.workers}", "checkpoint_every=100", "keep_checkpoints=1",
                f"progress={str(p.name != 'tiny').lower()}"]

    def autoencoder(self):
        """The shared stage 1 (train-ae): ``--ae-config``'s YAML first, then the preset's data, size, batch, steps
        and checkpointing, then ``--ae-set``."""
        return build_config("train-ae", self.ae_config,
                            self.common() + [f"steps={self.preset.ae_steps}", *self.ae_set])

    def stage1_conflicts(self, saved: dict[str, Any]) -> list[str]:
        """The keys that ``--ae-config`` and ``--ae-set`` ask of stage 1 but that the stage 1 ``saved`` (its
        config.yaml) was trained without, as ``key: trained V, asked W``. Empty when this command asks nothing of
        stage 1: later commands may use a work folder's stage 1 without repeating its keys."""
        preset_names = {pair.partition("=")[0] for pair in self.common()} | {"steps"}  # the YAML's lose to these
        asked_names = set(load_yaml(self.ae_config)) - preset_names if self.ae_config else set()
        asked_names |= set(parse_set_args(list(self.ae_set)))
        asked_names -= BOOKKEEPING_KEYS
        if not asked_names:
            return []
        asked = config_to_dict(self.autoencoder())
        trained = {**config_to_dict(config_class("train-ae")()), **saved}  # a key newer than the run: its default
        return [f"{name}: trained {trained[name]!r}, asked {asked[name]!r}"
                for name in sorted(asked_names) if asked[name] != trained[name]]

    def spot(self, spec: ModelSpec, seed: int, autoencoder: Path | str = ""):
        """The train-spot config of a stage-2 row at ``seed``: a variant's YAML file first, if it has one, then the
        preset's keys, ``--set``, and the row's own keys last, so that no --set can undo what the row is about."""
        pairs = (self.common() + [f"steps={self.preset.spot_steps}", f"autoencoder={autoencoder}", f"seed={seed}",
                                  *self.spot_set, *spec.keys])
        return build_config("train-spot", spec.config_file, pairs)

    def spot_budget(self, spec: ModelSpec) -> tuple[int, int]:
        """Steps and batch a stage-2 row will train with: the preset's, then ``--set``, then the row's own keys."""
        values = {"steps": self.preset.spot_steps, "batch_size": self.preset.batch_size}
        for pair in (*self.spot_set, *spec.keys):  # the row's own keys come last and win
            key, _, value = pair.partition("=")
            if key.strip() in values:
                values[key.strip()] = int(value)
        return values["steps"], values["batch_size"]

    def supervised(self, seed: int):
        return build_supervised_config(self.common() + [f"steps={self.preset.supervised_steps}", f"seed={seed}"])
