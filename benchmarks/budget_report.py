#!/usr/bin/env python3
"""The tables and charts of the budget study (issue 24, ``benchmarks/budget_study.sh``), from its work folders.

Reads WORK_ROOT/budget-*/ (one ``spotart reproduce`` work folder per stage-2 budget, stage 1 linked from
WORK_ROOT/stage1), the ``*-seeds.json`` that reproduce wrote for each under RESULTS/<folder>/, the runs'
config.yaml, metrics.jsonl and timing.json, and WORK_ROOT/commit and cpus.tsv (what the script recorded). Writes:

- RESULTS/budget-study.md: the budget table (rows x budget: the best-layer gain over the random network the row
  started from, same init scheme and seed, as mean ± sample sd where two seeds exist), the per-layer gains of every
  row and seed (``gains.py``), the random starts, images seen and training time per row and seed, the kNN trajectory
  (conv2 / conv3 / conv5 at step 0, at each budget's last step and at the run's last), and C's ``disc_acc``,
  ``mask_acc``, ``mask_acc_fake`` (RotNet: ``rot_acc``) over time (the mean of each quarter of training);
- RESULTS/budget-study.png: best-layer gain against images seen (log scale), the official preset and RotNet, each
  seed a point, a line through each row's means;
- RESULTS/trajectories-<folder>.png: kNN top-1 against training time per budget (``trajectories.py``'s chart).

    python benchmarks/budget_report.py --work-root benchmarks/runs/budget-study \\
        --results benchmarks/results/budget-study

Rows not probed yet are listed as pending; a row whose random start is not probed at its seed has no gain yet.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gains as gains_module  # noqa: E402  (benchmarks/gains.py: the pairing and rounding of every gain)

RANDOM_ROW = "random_official"
REFERENCE = re.compile(r"official_(\w+?)$")  # official_1k, official_4k, official_16k: each budget's reference
ROTNET_LABELS = {"rotnet": "RotNet, as many images", "rotnet_equal_time": "RotNet, as long (stage 1 + stage 2)"}
BUDGET_KEYS = ("config", "precision", "steps")  # keys every stage-2 row of the study has; the rest name the row
ACCURACIES = ("disc_acc", "mask_acc", "mask_acc_fake", "rot_acc")
KNN_LAYERS = ("conv2", "conv3", "conv5")
# the paper's ablations (its STL-10 table: the full model beats each); every other extra key is a lever of ours
PAPER_ABLATIONS = {"repair=none", "repair=unmasked", "passes=2", "mask_loss_weight=0"}
STARTS = Path("starts") / "starts.json"  # WORK_ROOT/starts/starts.json, written by start_networks.py


class ReportError(ValueError):
    """A work root this script cannot read: the message says what is missing."""


@dataclass
class Run:
    """One row at one seed in one budget folder."""

    budget: str
    row: str
    seed: int
    folder: Path  # WORK/<budget folder>/<row>[-seed<k>]
    probe: dict[str, float] | None = None
    config: dict | None = None
    metrics: list[dict] = field(default_factory=list)
    random: dict[str, float] | None = None  # the random start's probe at the same seed
    gain: dict[str, float] | None = None  # layer -> points over the random start at the same seed (gains.py)
    start: dict[str, float] | None = None  # the probe of the network this run's C started from (start_networks.py)

    @property
    def steps(self) -> int | None:
        steps = [row["step"] for row in self.metrics if "step" in row]
        return max(steps) if steps else None

    @property
    def images(self) -> int | None:
        """Source images seen: steps x batch (RotNet sees each in four rotations)."""
        if self.steps is None or not self.config:
            return None
        return self.steps * int(self.config["batch_size"])

    @property
    def train_minutes(self) -> float | None:
        walls = [row["wall_s"] for row in self.metrics if "wall_s" in row]
        return walls[-1] / 60 if walls else None

    def _best_against(self, reference: dict[str, float] | None) -> tuple[str, float] | None:
        """The row's best layer and its top-1 minus the best layer's top-1 of ``reference``."""
        if not self.probe or not reference:
            return None
        layer, top1 = gains_module.best_of(self.probe)
        return layer, top1 - gains_module.best_of(reference)[1]

    @property
    def best(self) -> tuple[str, float] | None:
        """The issue's best-layer gain against the random start (gains.py's first column; not its largest
        per-layer gain), and the row's best layer."""
        return self._best_against(self.random)

    @property
    def best_from_start(self) -> tuple[str, float] | None:
        """The best-layer gain against the network this run's C started from (rebuilt and probed by
        start_networks.py): in the pinned code C was drawn after the repair network, so not as the random row."""
        return self._best_against(self.start)


@dataclass
class Budget:
    name: str  # 1k, 4k, 16k
    folder: Path
    steps: int | None  # the reference row's stage-2 steps
    variants: dict[str, list[str]]
    runs: list[Run]
    randoms: dict[int, dict[str, float]]  # seed -> the random start's probe


def read_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_of(row: str, name: str) -> int | None:
    if name == row:
        return 0
    match = re.fullmatch(re.escape(row) + r"-seed(\d+)", name)
    return int(match.group(1)) if match else None


def extra_pairs(row: str, variants: dict[str, list[str]]) -> list[str]:
    """A stage-2 row's ``key=value`` pairs beyond the keys every stage-2 row of the study shares."""
    return [pair for pair in variants.get(row, []) if pair.split("=", 1)[0] not in BUDGET_KEYS]


def row_label(row: str, variants: dict[str, list[str]]) -> str:
    """What a row is, without the keys every stage-2 row of the study shares."""
    if row in ROTNET_LABELS:
        return ROTNET_LABELS[row]
    extra = extra_pairs(row, variants)
    return "official preset (bf16)" + (" + " + ", ".join(extra) if extra else "")


def verdict(value: float, reference: list[float], paper_ablation: bool) -> str:
    """A row's best-layer gain against the official row's seeds, by the issue's rule: a difference counts when it is
    larger than the official seeds' spread (their range). For one of the paper's ablations that says whether the
    paper's order (the full model best) holds; for a lever of ours, whether it earns a second seed. Where the row
    lies among the official seeds is given either way."""
    low, high, mean = min(reference), max(reference), sum(reference) / len(reference)
    place = "below all" if value < low else "above all" if value > high else "within their range"
    if len(reference) < 2:
        return f"{place} (one official seed: no spread yet)"
    spread, difference = high - low, value - mean
    if difference < -spread:
        found = "the paper's order holds" if paper_ablation else "worse than the official preset"
    elif difference > spread:
        found = "the paper's order is reversed" if paper_ablation else "better than the official preset: a second seed"
    else:
        found = "no difference beyond the seed spread"
    return f"{found} ({gains_module.points(difference)} against their mean, spread {spread:.1f}; {place})"


def read_budget(work: Path, results: Path, name: str) -> Budget:
    folder = work / f"budget-{name}"
    variants_path = folder / "variants.json"
    variants = json.loads(variants_path.read_text()) if variants_path.is_file() else {}
    reference = variants.get(f"official_{name}", [])
    steps = next((int(pair.split("=", 1)[1]) for pair in reference if pair.startswith("steps=")), None)
    seeds_files = sorted((results / folder.name).glob("*-seeds.json"))
    table = json.loads(seeds_files[0].read_text()) if seeds_files else {}
    reference_row = f"official_{name}"
    rows = ([reference_row, *ROTNET_LABELS]
            + [row for row in variants if "init=random" not in variants[row] and row != reference_row])
    runs = []
    for row in rows:
        for path in sorted(folder.glob(f"{row}*")):
            seed = seed_of(row, path.name)
            if seed is None or not path.is_dir():
                continue
            run_dir = path / "run"
            config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() \
                else None
            probe = table.get(row, {}).get(str(seed))
            runs.append(Run(name, row, seed, path, probe, config, read_lines(run_dir / "metrics.jsonl")))
    runs.sort(key=lambda run: (rows.index(run.row), run.seed))
    randoms = {int(seed): probe for seed, probe in table.get(RANDOM_ROW, {}).items()}
    starts_path = work / STARTS
    starts = json.loads(starts_path.read_text()) if starts_path.is_file() else {}
    for run in runs:
        run.start = starts.get(str(run.folder.resolve()), {}).get("start")
        if run.probe is None or run.seed not in randoms:
            continue
        run.random = randoms[run.seed]
        source = str(seeds_files[0])
        (found,) = gains_module.seed_gains({source: {run.row: {str(run.seed): run.probe},
                                                     RANDOM_ROW: {str(run.seed): randoms[run.seed]}}},
                                           [(run.row, RANDOM_ROW)])
        run.gain = found.gains
    return Budget(name, folder, steps, variants, runs, randoms)


def read_budgets(work: Path, results: Path) -> list[Budget]:
    names = [path.name.removeprefix("budget-") for path in work.glob("budget-*") if path.is_dir()]
    budgets = [read_budget(work, results, name) for name in names]
    return sorted(budgets, key=lambda budget: (budget.steps is None, budget.steps or 0, budget.name))


def cpus(work: Path) -> dict[str, str]:
    path = work / "cpus.tsv"
    if not path.is_file():
        return {}
    return dict(line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)


# ---------------------------------------------------------------------------------------------------- tables
def gain_cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = gains_module.points(statistics.fmean(values))
    if len(values) == 1:
        return f"{mean} (1 seed)"
    return f"{mean} ± {gains_module.points(statistics.stdev(values), signed=False)} ({len(values)} seeds)"


def images_text(images: int | None) -> str:
    return f"{images:,}" if images is not None else "-"


def budget_table(budgets: list[Budget]) -> list[str]:
    labels: dict[str, None] = {row_label("official", {}): None, **dict.fromkeys(ROTNET_LABELS.values())}
    for budget in budgets:
        for run in budget.runs:
            labels.setdefault(row_label(run.row, budget.variants))
    seen = {row_label(run.row, budget.variants) for budget in budgets for run in budget.runs}
    labels = {label: None for label in labels if label in seen}
    header = ["row"]
    for budget in budgets:
        batch = next((int(run.config["batch_size"]) for run in budget.runs if run.config), None)
        images = f", {budget.steps * batch:,} images" if budget.steps and batch else ""
        header.append(f"{budget.name}: {budget.steps or '?'} stage-2 steps{images}")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(budgets)]
    for label in labels:
        cells = []
        for budget in budgets:
            runs = [run for run in budget.runs if row_label(run.row, budget.variants) == label]
            values = [run.best[1] for run in runs if run.best]
            parts = [gain_cell(values)] if values else []
            if values and label == ROTNET_LABELS["rotnet_equal_time"]:
                parts[0] += " at " + ", ".join(images_text(run.images) for run in runs if run.best) + " images"
            if len(runs) > len(values):
                parts.append(f"{len(runs) - len(values)} pending")
            cells.append("; ".join(parts) or "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def against_reference(budgets: list[Budget], measure: str = "best") -> list[str]:
    """Each other stage-2 row of a budget against the budget's official row: its best-layer gain per seed, the
    official seeds' gains, and :func:`verdict` (the issue's test: a difference beyond the seed spread).
    ``measure``: ``best`` (against the random row) or ``best_from_start`` (against each run's own start)."""
    lines = []
    for budget in budgets:
        measured = [(run, getattr(run, measure)) for run in budget.runs]  # (run, (layer, gain) or None)
        reference = [found[1] for run, found in measured if found and run.row == f"official_{budget.name}"]
        others = [(run, found[1]) for run, found in measured
                  if found and run.row not in (f"official_{budget.name}", *ROTNET_LABELS)]
        if not reference or not others:
            continue
        if not lines:
            lines = ["| row | kind | budget | seed | best-layer gain | official row's seeds | against them |",
                     "|---|---|---|---:|---:|---|---|"]
        spread = " / ".join(gains_module.points(value) for value in reference)
        for run, value in others:
            paper = set(extra_pairs(run.row, budget.variants)) <= PAPER_ABLATIONS
            found = verdict(value, reference, paper)
            kind = "paper's ablation" if paper else "our lever"
            lines.append(f"| {row_label(run.row, budget.variants)} | {kind} | {budget.name} | {run.seed} | "
                         f"{gains_module.points(value)} | {spread} | {found} |")
    return lines or ["(no ablation or lever row is probed yet)"]


def start_table(budgets: list[Budget]) -> list[str]:
    """Each stage-2 run whose start was probed: the start's and the random row's best top-1, both gains."""
    lines = ["| row | budget | seed | start's best top-1 | random row's best top-1 | best-layer gain against its "
             "start | against the random row |", "|---|---|---:|---:|---:|---:|---:|"]
    for budget in budgets:
        for run in budget.runs:
            if not run.best_from_start:
                continue
            random = f"{max(run.random.values()):.1f}" if run.random else "-"
            against_random = gains_module.points(run.best[1]) if run.best else "-"
            lines.append(f"| {row_label(run.row, budget.variants)} | {budget.name} | {run.seed} | "
                         f"{max(run.start.values()):.1f} | {random} | "
                         f"{gains_module.points(run.best_from_start[1])} | {against_random} |")
    return lines if len(lines) > 2 else []


def layer_gains(budgets: list[Budget]) -> list[str]:
    found = [gains_module.SeedGain(f"{run.row} ({budget.name})", str(run.seed), run.gain,
                                   gains_module.best_of(run.probe), gains_module.best_of(run.random))
             for budget in budgets for run in budget.runs if run.gain and run.probe and run.random]
    return gains_module.markdown(found).rstrip("\n").splitlines() if found else ["(no row has a gain yet)"]


def random_table(budgets: list[Budget]) -> list[str]:
    lines = ["| folder | seed | " + " | ".join(f"conv{i}" for i in range(1, 6)) + " |", "|---|---:|" + "---:|" * 5]
    for budget in budgets:
        for seed, probe in sorted(budget.randoms.items()):
            lines.append(f"| {budget.folder.name} | {seed} | "
                         + " | ".join(f"{probe.get(f'conv{i}', math.nan):.1f}" for i in range(1, 6)) + " |")
    return lines


def time_table(budgets: list[Budget], machines: dict[str, str], work: Path) -> list[str]:
    lines = ["| row | budget | seed | CPU | steps | images | training min | probe min |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    stage1 = work / "stage1" / "autoencoder" / "run"
    walls = [row["wall_s"] for row in read_lines(stage1 / "metrics.jsonl") if "wall_s" in row]
    if walls:
        steps = max(row["step"] for row in read_lines(stage1 / "metrics.jsonl") if "step" in row)
        lines.append(f"| stage 1 (shared) | - | 0 | {machines.get('stage1/autoencoder', '?')} | {steps} | - | "
                     f"{walls[-1] / 60:.1f} | - |")
    for budget in budgets:
        timing_path = budget.folder / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
        for run in budget.runs:
            probe_s = timing.get(run.folder.name, {}).get("probe_s")
            minutes = f"{run.train_minutes:.1f}" if run.train_minutes is not None else "-"
            lines.append(f"| {run.row} | {budget.name} | {run.seed} | "
                         f"{machines.get(f'{budget.folder.name}/{run.row}', '?')} | {run.steps or '-'} | "
                         f"{images_text(run.images)} | {minutes} | {f'{probe_s / 60:.1f}' if probe_s else '-'} |")
    return lines


def knn_table(budgets: list[Budget]) -> list[str]:
    milestones = [0] + [budget.steps for budget in budgets if budget.steps]
    lines = ["| row | budget | seed | " + " | ".join(f"step {step}" for step in milestones) + " | last |",
             "|---|---|---:|" + "---:|" * (len(milestones) + 1)]

    def cell(row: dict) -> str:
        return " / ".join(f"{row[f'knn_{layer}']:.1f}" if f"knn_{layer}" in row else "-" for layer in KNN_LAYERS)

    for budget in budgets:
        for run in budget.runs:
            knn = {row["step"]: row for row in run.metrics if any(f"knn_{layer}" in row for layer in KNN_LAYERS)}
            if not knn:
                continue
            last = max(knn)
            cells = [cell(knn[step]) if step in knn else "" for step in milestones]
            lines.append(f"| {run.row} | {budget.name} | {run.seed} | " + " | ".join(cells)
                         + f" | {cell(knn[last])} (step {last}) |")
    return lines


def accuracy_table(budgets: list[Budget]) -> list[str]:
    lines = ["| row | budget | seed | " + " | ".join(f"`{key}`" for key in ACCURACIES)
             + " | chance: `mask_chance` / `mask_chance_fake` |", "|---|---|---:|" + "---:|" * (len(ACCURACIES) + 1)]
    for budget in budgets:
        for run in budget.runs:
            total = run.steps
            if not total:
                continue
            cells = []
            for key in ACCURACIES:
                logged = [(row["step"], row[key]) for row in run.metrics if key in row]
                if not logged:
                    cells.append("-")
                    continue
                quarters = []
                for quarter in range(4):
                    low, high = total * quarter / 4, total * (quarter + 1) / 4
                    values = [value for step, value in logged if low < step <= high or (quarter == 0 and step == 0)]
                    quarters.append(f"{statistics.fmean(values):.2f}" if values else "-")
                cells.append(" / ".join(quarters) + f" (last {logged[-1][1]:.2f})")
            chances = [[row[key] for row in run.metrics if key in row] for key in ("mask_chance", "mask_chance_fake")]
            cells.append(" / ".join(f"{statistics.fmean(values):.2f}" for values in chances) if all(chances) else "-")
            lines.append(f"| {run.row} | {budget.name} | {run.seed} | " + " | ".join(cells) + " |")
    return lines


def pending(budgets: list[Budget]) -> list[str]:
    out = []
    for budget in budgets:
        for run in budget.runs:
            if run.probe is None:
                state = f"training, step {run.steps}" if run.steps is not None else "not started"
                out.append(f"{budget.folder.name}/{run.folder.name} ({state})")
    return out


def markdown(work: Path, results: Path, budgets: list[Budget], chart: Path | None) -> str:
    commit = (work / "commit").read_text().split()[0] if (work / "commit").is_file() else "?"
    machines = cpus(work)
    lines = ["## Budget study (issue 24): the official preset and RotNet against budget, and the ablations at 4k",
             "",
             f"- pinned commit: `{commit}`; work folders `{work}`, reproduce's tables in `{results}/<folder>/`",
             "- CPU of each row (WORK_ROOT/cpus.tsv): " + ("; ".join(sorted(set(machines.values()))) or "?"),
             "- each cell: the best layer's top-1 minus the best layer's top-1 of the random network the row started "
             f"from (`{RANDOM_ROW}` at the same seed, same folder), in points; mean ± sample sd over seeds",
             "",
             *budget_table(budgets), ""]
    if chart is not None:
        lines += [f"![best-layer gain against images seen]({chart.name})", ""]
    waiting = pending(budgets)
    if waiting:
        lines += ["Pending: " + ", ".join(waiting) + ".", ""]
    lines += ["### The ablations and levers against the official row of their budget", "",
              *against_reference(budgets), ""]
    starts = start_table(budgets)
    if starts:
        lines += ["### Against the network each run started from (benchmarks/start_networks.py)", "",
                  "At the pinned commit train-spot drew C after the repair network, from the same random stream, "
                  f"so a run's C did not start as `{RANDOM_ROW}` at its seed (the random row is C's trunk drawn "
                  "right after seeding), and a run without a repair network started from yet another network. "
                  "start_networks.py rebuilds each run's step-0 C (checked against the kNN the run logged at "
                  "step 0) and probes it as reproduce probes a row.", "", *starts, "",
                  "The ablations and levers by the same rule, on these gains:", "",
                  *against_reference(budgets, "best_from_start"), ""]
    lines += ["### Per-layer gains over the random start, per row and seed (gains.py)", "",
              "The best-layer gain of the table above (with the two layers it compares), then each layer against "
              "the same layer of the random start and the largest of those (the figure this project reported "
              "before the budget study).", "", *layer_gains(budgets), "",
              f"### The random starts (`{RANDOM_ROW}`, probe top-1 %)", "", *random_table(budgets), "",
              "### Images and training time", "",
              "Training minutes: the run's last `wall_s` (without start-up and the kNN monitor); images: source "
              "images (RotNet sees each in four rotations). Stage-2 rows start after the shared stage 1.", "",
              *time_table(budgets, machines, work), "",
              "### kNN trajectory (top-1 %, conv2 / conv3 / conv5)", "", *knn_table(budgets), "",
              "### C's accuracies over time (mean of each quarter of training; the last logged value)", "",
              "`disc_acc` chance 0.50; `mask_acc` against `mask_chance` (\"always kept\": 0.65 at drop rate 0.7); "
              "`mask_acc_fake` against `mask_chance_fake` (the better constant guess: 0.70 at drop rate 0.7), both "
              "as the run logged them (their mean over the run); `rot_acc` chance 0.25.", "",
              *accuracy_table(budgets)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- charts
SERIES = (  # row, label, colour, marker
    ("official", "spotart, official preset (bf16)", "#1f77b4", "o"),
    ("rotnet", ROTNET_LABELS["rotnet"], "#d62728", "s"),
    ("rotnet_equal_time", ROTNET_LABELS["rotnet_equal_time"], "#2ca02c", "^"),
)


def draw_chart(budgets: list[Budget], out: Path) -> bool:
    """Best-layer gain against images seen, log x; False when no row has a gain yet."""
    points: dict[str, list[tuple[int, float]]] = {key: [] for key, *_ in SERIES}
    for budget in budgets:
        for run in budget.runs:
            key = "official" if run.row == f"official_{budget.name}" else run.row
            if key in points and run.best and run.images:
                points[key].append((run.images, run.best[1]))
    if not any(points.values()):
        return False
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axis = figure.subplots()
    for key, label, colour, marker in SERIES:
        if not points[key]:
            continue
        xs, ys = zip(*points[key])
        axis.scatter(xs, ys, color=colour, marker=marker, label=label, zorder=3)
        means = {x: statistics.fmean(y for other, y in points[key] if other == x) for x in sorted(set(xs))}
        if len(means) > 1 and key != "rotnet_equal_time":
            axis.plot(list(means), list(means.values()), color=colour, linewidth=1.0, alpha=0.7)
    axis.axhline(0.0, color="0.4", linestyle="--", linewidth=1.0, label="random start")
    axis.set_xscale("log")
    axis.set_xlabel("source images seen in training (stage 2 / RotNet)")
    axis.set_ylabel("best-layer gain over the random start (points)")
    axis.set_title("Budget study (issue 24): each seed a point")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=110)
    return True


def draw_trajectories(work: Path, budgets: list[Budget], results: Path) -> list[Path]:
    """kNN top-1 against training time per budget folder, with trajectories.py's reader and chart."""
    import trajectories

    stage1 = work / "stage1" / "autoencoder" / "run"
    try:
        offset = trajectories.offset_seconds(str(stage1))
    except trajectories.TrajectoryError:
        offset = 0.0
    drawn = []
    for budget in budgets:
        runs = []
        for run in budget.runs:
            key = "official" if run.row == f"official_{budget.name}" else run.row
            label = next((text for name, text, *_ in SERIES if name == key), None)
            if label is None:
                continue
            try:
                runs.append(trajectories.read_run(label, run.folder / "run", KNN_LAYERS, "wall_s",
                                                  offset if key == "official" else 0.0))
            except trajectories.TrajectoryError:
                continue  # not started, or started without the kNN monitor
        if runs:
            out = results / f"trajectories-{budget.folder.name}.png"
            trajectories.draw(runs, KNN_LAYERS, out, "wall_s", None,
                              f"kNN top-1 against training time, {budget.name} ({budget.steps} stage-2 steps)")
            drawn.append(out)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-root", required=True, type=Path, help="budget_study.sh's WORK_ROOT")
    parser.add_argument("--results", required=True, type=Path, help="budget_study.sh's RESULTS")
    parser.add_argument("--no-charts", action="store_true", help="the markdown only")
    args = parser.parse_args(argv)
    if not args.work_root.is_dir():
        print(f"budget_report.py: {args.work_root} is not a folder (budget_study.sh's WORK_ROOT)", file=sys.stderr)
        return 2
    try:
        budgets = read_budgets(args.work_root, args.results)
        chart = args.results / "budget-study.png"
        drawn = not args.no_charts and draw_chart(budgets, chart)
        trajectory_charts = [] if args.no_charts else draw_trajectories(args.work_root, budgets, args.results)
        out = args.results / "budget-study.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(args.work_root, args.results, budgets, chart if drawn else None))
    except (ReportError, gains_module.GainsError, OSError, json.JSONDecodeError, yaml.YAMLError) as error:
        print(f"budget_report.py: {error}", file=sys.stderr)
        return 2
    print(f"tables: {out}" + (f"; chart: {chart}" if drawn else "")
          + "".join(f"; {path}" for path in trajectory_charts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
