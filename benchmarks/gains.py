#!/usr/bin/env python3
"""Probe gains over random init, per layer and seed, from ``spotart reproduce``'s ``RESULTS/<name>-seeds.json``.

A gain is measured against the network a row started from: the random-init row of the same init scheme, at the
same seed, in the same file (so in the same work folder, on the same machine). Each ``--row NAME=RANDOM`` names a
trained row and its random-init row; rows missing from a file are skipped, so several files (study sessions) can
be given at once and each row is read from the file that has it. A row and seed found in several files is read from
the first one given (the later copy, a repeat, is named on stderr).

    python benchmarks/gains.py \\
        --seeds-json benchmarks/results/reproduce-imagenette64-seeds.json \\
        --seeds-json benchmarks/results/reproduce-imagenette64-session2-seeds.json \\
        --row official_bf16=random_official --row official_bf16_centred=random_official_centred

Prints a markdown table: per row and seed, the best-layer gain first (the developers' guide's: the trained best
layer's top-1 minus the random network's best layer's top-1, with the two layers named), then each layer's gain
against the same layer of the random network and the largest of those; then, per row, the best-layer gain and the
largest per-layer gain as mean ± sample standard deviation (``n/a`` for one seed) and each layer's mean gain. The
two headline figures differ when the random network's best layer is another layer than the trained one's (random
AlexNets probe best at conv1 or conv2; trained ones often at conv3 to conv5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path


class GainsError(ValueError):
    """Input that names a row or random row this script cannot pair: the message says which and where."""


@dataclass(frozen=True)
class SeedGain:
    row: str
    seed: str
    gains: dict[str, float]  # layer -> top-1 points over the same layer of the random init at the same seed
    trained_best: tuple[str, float]  # the trained network's best layer and its top-1
    random_best: tuple[str, float]  # the random network's best layer and its top-1

    @property
    def best_layer(self) -> str:
        """The layer with the largest per-layer gain."""
        return max(self.gains, key=self.gains.__getitem__)

    @property
    def best_layer_gain(self) -> float:
        """The guide's figure: best trained top-1 minus best random top-1, whichever layers they are."""
        return self.trained_best[1] - self.random_best[1]


def best_of(probe: dict[str, float]) -> tuple[str, float]:
    layer = max(probe, key=probe.__getitem__)
    return layer, probe[layer]


def load(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GainsError(f"{path}: no such file (reproduce writes RESULTS/<name>-seeds.json)") from None
    except json.JSONDecodeError as error:
        raise GainsError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise GainsError(f"{path}: expected {{row: {{seed: {{layer: top-1}}}}}}")
    return data


def seed_gains(files: dict[str, dict], pairs: list[tuple[str, str]]) -> list[SeedGain]:
    """Every (row, seed) found in some file, paired with the random row at that seed in the same file."""
    found = []
    for row, random_row in pairs:
        seeds_read: set[str] = set()
        for source, table in files.items():
            if row not in table:
                continue
            if random_row not in table:
                raise GainsError(f"{source}: has {row} but not its random-init row {random_row}")
            for seed, probe in table[row].items():
                if seed in seeds_read:
                    # a repeat (e.g. a cross-machine check): the first file given holds the row's measurement
                    print(f"gains.py: {row} seed {seed} is also in {source}; using the earlier file's",
                          file=sys.stderr)
                    continue
                reference = table[random_row].get(seed)
                if reference is None:
                    raise GainsError(f"{source}: {random_row} has no seed {seed} (probe it with --seeds {seed})")
                found.append(SeedGain(row, seed, {layer: probe[layer] - reference[layer] for layer in probe},
                                      best_of(probe), best_of(reference)))
                seeds_read.add(seed)
        if not seeds_read:
            raise GainsError(f"row {row} is in none of {', '.join(files)}")
    return found


def points(value: float, signed: bool = True) -> str:
    """One decimal, halves rounded away from zero: the files hold two decimals, so a gain of 4.05 is exact and
    reads +4.1, as a hand computation would round it (binary floats would give +4.0)."""
    rounded = Decimal(str(round(value, 2))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{rounded:+}" if signed else f"{rounded}"


def mean_sd(values: list[float]) -> str:
    spread = f" ± {points(statistics.stdev(values), signed=False)}" if len(values) > 1 else " ± n/a"
    return f"{points(statistics.fmean(values))}{spread}"


def markdown(found: list[SeedGain]) -> str:
    layers = list(found[0].gains)
    lines = ["| row | seed | best-layer gain (trained best vs random best) | " + " | ".join(layers)
             + " | largest per-layer gain |", "|---|---:|---|" + "---:|" * len(layers) + "---|"]
    for gain in found:
        headline = f"{points(gain.best_layer_gain)} ({gain.trained_best[0]} vs {gain.random_best[0]})"
        cells = " | ".join(points(gain.gains[layer]) for layer in layers)
        best = f"{gain.best_layer} {points(gain.gains[gain.best_layer])}"
        lines.append(f"| {gain.row} | {gain.seed} | {headline} | {cells} | {best} |")
    lines += ["", "| row | seeds | best-layer gain, mean ± sd | " + " | ".join(f"mean {layer}" for layer in layers)
              + " | largest per-layer gain, mean ± sd |", "|---|---:|---:|" + "---:|" * len(layers) + "---|"]
    for row in dict.fromkeys(gain.row for gain in found):
        runs = [gain for gain in found if gain.row == row]
        means = {layer: statistics.fmean(run.gains[layer] for run in runs) for layer in layers}
        cells = " | ".join(points(means[layer]) for layer in layers)
        headline = mean_sd([run.best_layer_gain for run in runs])
        largest = mean_sd([run.gains[run.best_layer] for run in runs])
        lines.append(f"| {row} | {len(runs)} | {headline} | {cells} | {largest} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds-json", action="append", required=True, type=Path,
                        help="reproduce's RESULTS/<name>-seeds.json (repeat: each row is read where it is)")
    parser.add_argument("--row", action="append", required=True, metavar="NAME=RANDOM",
                        help="a trained row and the random-init row it started from")
    args = parser.parse_args(argv)
    try:
        pairs = []
        for pair in args.row:
            row, sep, random_row = pair.partition("=")
            if not sep or not row or not random_row:
                raise GainsError(f"--row {pair!r}: expected NAME=RANDOM, e.g. official_bf16=random_official")
            pairs.append((row, random_row))
        files = {str(path): load(path) for path in args.seeds_json}
        print(markdown(seed_gains(files, pairs)), end="")
    except GainsError as error:
        print(f"gains.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
