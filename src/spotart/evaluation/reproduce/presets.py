"""The presets of ``spotart reproduce``: image size, batch and budgets, default data, and the results files' names.

Results go to ``RESULTS/<results_name>.json`` (model -> layer -> top-1 %, the mean over seeds), ``-seeds.json`` (every
run) and ``.md`` (the table with command, budgets, wall times and machine); the CIFAR-10 preset writes
``reproduce-cifar10.*`` and imagenette-64 ``reproduce-imagenette64.*``, so that the tables stand side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EvaluationError
from ..toydata import write_toy_dataset

IMAGENETTE = "../shared/data/imagenette-96"  # relative to the repository root, where the command is run
CIFAR10 = "../shared/data/cifar10"
EVAL_SPLITS = ("val", "test")  # the evaluation split's folder: imagenette has val/, CIFAR-10 test/
RESULT_FILES = {"json": "{name}.json", "seeds": "{name}-seeds.json", "md": "{name}.md"}  # --print-results' choices


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


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise EvaluationError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def work_folder(preset: Preset, work: str | None = None) -> Path:
    """``--work``, default ``benchmarks/runs/reproduce-PRESET`` (relative to the repository root)."""
    return Path(work or f"benchmarks/runs/reproduce-{preset.name}")


def results_folder(preset: Preset, work: str | None = None, results: str | None = None) -> Path:
    """``--results``, default ``benchmarks/results``; the tiny preset's default is ``WORK/results``."""
    return Path(results or (work_folder(preset, work) / "results" if preset.name == "tiny" else "benchmarks/results"))


def results_path(preset: Preset, work: str | None = None, results: str | None = None, which: str = "json") -> Path:
    """Where a preset's results file is (or will be): ``which`` is json (the table), seeds (every run) or md."""
    return results_folder(preset, work, results) / RESULT_FILES[which].format(name=preset.results_name)


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
