"""The RotNet yardstick of ``spotart reproduce``: which stage-2 row the RotNet rows match, and their budgets.

RotNet (``train-rotnet``) on the same trunk, once with as many source images as the reference row sees
(``rotnet``) and once for as long as the reference trained, stage 1 plus stage 2 at the same seed
(``rotnet_equal_time``: training seconds, ``wall_s`` of the runs' metrics, without the kNN monitor's evaluations).
``equal_time_to`` names the reference row (default ``full``): the paper's rows, or a variant, trained by this command
or by an earlier one. The RotNet rows take every key of its config that RotNet has (data, optimiser, precision, the
kNN monitor's, the trunk's init and padding). ``rotnet`` needs only the reference's config, so the reference may be
defined and not trained; ``rotnet_equal_time`` needs its finished runs, which :meth:`Yardstick.check` asks for
before any training.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ...config import ROTNET_SHARED_KEYS, config_to_dict
from ..errors import EvaluationError
from .rows import MODELS, ModelSpec, RowConfigs, run_folder
from .work import WorkFolder, metrics_rows

ROTNET_STEP_LIMIT = 10_000_000  # steps bound of a time-budgeted RotNet run: its seconds end it long before


class Yardstick:
    """The reference row of the RotNet rows and the train-rotnet keys that match it."""

    def __init__(self, work: WorkFolder, configs: RowConfigs, equal_time_to: str = "full") -> None:
        self.work, self.configs, self.equal_time_to = work, configs, equal_time_to

    def reference(self) -> ModelSpec:
        """The stage-2 row that the RotNet rows match (``equal_time_to``): the full method unless told otherwise."""
        known = {spec.name: spec for spec in (*MODELS, *self.work.variants())}
        spec = known.get(self.equal_time_to)
        if spec is None or spec.kind != "spot":
            rows = ", ".join(name for name, other in known.items() if other.kind == "spot")
            raise EvaluationError(f"--equal-time-to {self.equal_time_to!r} is not a stage-2 row of this work folder "
                                  f"(choose from {rows})")
        return spec

    def reference_config(self, seed: int) -> dict[str, Any]:
        """The resolved train-spot config of the reference row at ``seed``: its run's config.yaml when it has run,
        else the config it would run with (so the reference may be a row that this command does not train)."""
        reference = self.reference()
        saved = self.work.saved_config(run_folder(reference, seed))
        return saved if saved is not None else config_to_dict(self.configs.spot(reference, seed))

    def check(self, selected: tuple[ModelSpec, ...], seeds: tuple[int, ...]) -> None:
        """Before any training: a time-budgeted RotNet row needs the finished shared stage 1 and reference run at
        each seed, from the work folder or from this command (which trains its other rows before the RotNet rows).
        One clear line when the reference is neither trained here nor finished there."""
        if not any(spec.kind == "rotnet_time" for spec in selected):
            return
        reference = self.reference()
        if reference in selected:
            return
        for folder in ("autoencoder", *(run_folder(reference, seed) for seed in seeds)):
            if not self.work.finished(folder):
                raise EvaluationError(
                    f"rotnet_equal_time needs the finished {folder} run in {self.work.root / folder / 'run'} (its "
                    f"training time is the budget), and this command does not train {reference.name}: add "
                    f"{reference.name} to --models")

    def pairs(self, spec: ModelSpec, seed: int) -> list[str]:
        """train-rotnet keys of a RotNet row: every key of the reference row's config that RotNet has (data,
        augmentation, optimiser, precision, the kNN monitor's, the trunk's init and padding; the stage-2 keys mean
        nothing to it), then the row's budget: the reference's steps, or its time with an unreachable step count."""
        reference = self.reference_config(seed)
        settings = {key: f"{key}={_setting(value)}" for key, value in reference.items() if key in ROTNET_SHARED_KEYS}
        # this command's --set keys win: a reference trained earlier without the kNN monitor still gives a monitored
        # RotNet when knn_val is given now; one pair per key keeps the logged command readable
        for pair in self.configs.spot_set:
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
        parts = []
        for folder in ("autoencoder", run_folder(self.reference(), seed)):
            seconds, source = self.training_seconds(folder)
            parts.append((folder, seconds, source))
        total = sum(seconds for _, seconds, _ in parts)
        return total, " + ".join(f"{folder} {seconds:.0f} s ({source})" for folder, seconds, source in parts)

    def training_seconds(self, folder: str) -> tuple[float, str]:
        """Training seconds of the finished run in ``WORK/<folder>/run``: its last ``wall_s`` (training alone), else
        (a run logged before ``wall_s`` existed) its ``train_s`` in timing.json."""
        run_dir = self.work.root / folder / "run"
        if not self.work.finished(folder):
            raise EvaluationError(f"rotnet_equal_time needs the finished {folder} run in {run_dir} (its training time "
                                  f"is the budget): run --models {folder.partition('-seed')[0]} first")
        walls = [row["wall_s"] for row in metrics_rows(run_dir / "metrics.jsonl") if "wall_s" in row]
        if walls:
            return float(walls[-1]), "wall_s"
        train_s = self.work.timing().get(folder, {}).get("train_s")
        if train_s:
            return float(train_s), "timing.json"
        raise EvaluationError(f"the training time of {run_dir} is unknown: its metrics.jsonl has no wall_s and "
                              f"{self.work.timing_path} no train_s for {folder}")

    @staticmethod
    def command(run_dir: Path, pairs: list[str]) -> str:
        """The train-rotnet command a RotNet row runs, as the CLI takes it (kept in its run's command.txt)."""
        return "spotart train-rotnet --out " + shlex.quote(str(run_dir)) + "".join(
            f" --set {shlex.quote(pair)}" for pair in pairs)


def _setting(value: Any) -> str:
    """A config value as ``--set`` takes it back (lists comma-separated, booleans true/false)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_setting(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)
