"""The results of ``spotart reproduce``: ``RESULTS/<name>.json`` (model -> layer -> top-1 %, the mean over seeds),
``<name>-seeds.json`` (every run) and ``<name>.md`` (the table with command, budgets, wall times and machine),
rewritten after every model from what the work folder holds, so that runs of different ``--models`` subsets add up
to one table."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

import torch

from ...train.device import cpu_has_fast_bf16
from .presets import Preset
from .rows import MODELS, ROTNET_KINDS, ModelSpec, RowConfigs, seed_of_folder
from .work import WorkFolder, metrics_rows
from .yardstick import Yardstick

PAPER_IMAGES = 500 * 100_000  # the paper's stage 2: 500 epochs of STL-10's 100k unlabelled images
PAPER_PROBES = {  # METHOD.md: ImageNet linear probes, top-1 conv1..conv5 (a different, 1000-class task)
    "Spot-Artifacts": (19.5, 33.3, 37.9, 38.9, 34.9),
    "random init": (11.6, 17.1, 16.9, 16.3, 14.1),
    "supervised AlexNet": (19.3, 36.3, 44.2, 48.3, 50.5),
}


class Tables:
    """The results files of one preset's work folder."""

    def __init__(self, preset: Preset, work: WorkFolder, configs: RowConfigs, yardstick: Yardstick, results: Path,
                 val_dir: Path, command: str) -> None:
        self.preset, self.work, self.configs, self.yardstick = preset, work, configs, yardstick
        self.results, self.val_dir, self.command = results, val_dir, command

    # ----------------------------------------------------------------------------------------------- budgets
    def spot_budget(self, spec: ModelSpec) -> tuple[int, int]:
        """Steps and batch of a stage-2 row: as its run recorded them, else as ``--set`` and its keys ask."""
        saved = self.work.saved_config(spec.name)
        if saved is not None:
            return int(saved["steps"]), int(saved["batch_size"])
        return self.configs.spot_budget(spec)

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
        reference = self.yardstick.equal_time_to
        if spec.kind == "rotnet":
            saved = self.work.saved_config(spec.name)
            if saved is not None:
                steps, batch = int(saved["steps"]), int(saved["batch_size"])
            else:
                steps, batch = self.spot_budget(self.yardstick.reference())
            return f"{steps} steps x {batch} ({steps * batch:,} images, each in 4 rotations: those of {reference})"
        reached = []
        for folder in sorted(self.work.root.glob(f"{spec.name}*"),
                             key=lambda path: seed_of_folder(spec, path.name) or 0):
            seed, saved = seed_of_folder(spec, folder.name), self.work.saved_config(folder.name)
            rows = metrics_rows(folder / "run" / "metrics.jsonl")
            if seed is None or saved is None or not rows:
                continue
            reached.append(f"seed {seed}: {float(saved['max_seconds']):.0f} s, {rows[-1]['step']} steps x "
                           f"{saved['batch_size']}")
        return (f"training time of stage 1 + {reference} stage 2 at the same seed"
                + (f" ({'; '.join(reached)})" if reached else ""))

    # ----------------------------------------------------------------------------------------------- files
    def write(self, selected: tuple[ModelSpec, ...], wall_s: float) -> dict[str, dict[str, float]]:
        """The table of the selected models and of any other model already probed in this work folder (so that
        runs of different ``--models`` subsets add up to one table), in the paper's row order, variants last.
        Each cell is the mean over the seeds probed so far."""
        candidates = (*MODELS, *self.work.variants())
        found_runs = {spec.name: self.work.probes(spec) for spec in candidates}  # each probe.json read once
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

    def markdown(self, specs: tuple[ModelSpec, ...], runs: dict[str, dict[int, dict]], wall_s: float) -> str:
        p, timing = self.preset, self.work.timing()
        ae_time = self.work.train_seconds("autoencoder", timing)
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
            f"- data: `{self.configs.train_dir}` for pretraining without labels and for the probes' training "
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
            seconds = self.work.row_seconds(spec, timing)
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
                 f"`{self.yardstick.equal_time_to}` row's stage 2 at the same seed. RotNet's published ImageNet probes "
                 "(full budget): 18.8 / 31.7 / 38.7 / 38.2 / 36.5. Commands (seed 0):"]
        for spec in specs:
            saved = self.work.root / spec.name / "run" / "command.txt"
            if saved.is_file():
                lines.append(f"`{spec.name}`: `{saved.read_text().strip()}`")
        return "\n".join(lines[:1] + [f"- {line}" for line in lines[1:]])


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
