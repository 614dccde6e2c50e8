"""The network a train-spot run started from, rebuilt and probed: its gains against its own start.

A train-spot run builds C after the frozen autoencoder and the repair network, from the same random stream, so
its C does not start as `random_official` (``--init random``: C's trunk drawn right after seeding) at the same
seed: a run with a repair network starts from one draw, a run without one (``repair=none``) from another, and the
random row from a third. This script rebuilds a run's step-0 C exactly as ``train_spot`` does (``start_session``,
``load_autoencoder``, ``build_models``, from the run's own ``config.yaml``), checks it against the kNN the run logged
at step 0, saves it as a train-spot checkpoint and probes it with ``spotart reproduce``'s settings for the preset
(the row's seed, subset, epochs). ``OUT/starts.json`` keeps each row folder's start (``budget_report.py`` reads
``WORK_ROOT/starts/starts.json``); a row already there is not rebuilt again unless ``--recheck`` asks. It prints, for
every start recorded so far, the start's probe, the run's own probe (``../probe/probe.json``) and both best-layer
gains: against the start and against the random row.

    cd /work/study-tree   # the checkout the runs were trained with (its src/ on PYTHONPATH)
    PYTHONPATH=src python /work/main/benchmarks/start_networks.py --preset imagenette-64 \
        --out /work/budget-study/starts --table /tmp/starts.md RUN_DIR [RUN_DIR ...]

Run from the folder the runs were started in: their ``config.yaml`` keeps relative data paths.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from spotart.config import build_config, config_to_dict
from spotart.evaluation.backbones import fingerprint
from spotart.evaluation.knn import monitor_from_config
from spotart.evaluation.linear import LinearSettings
from spotart.evaluation.probe import ProbeOptions, run_probe
from spotart.evaluation.reproduce.presets import eval_split, get_preset
from spotart.train.checkpoints import CHECKPOINT_FORMAT, save_checkpoint
from spotart.train.session import start_session
from spotart.train.stage2 import build_models, load_autoencoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gains import best_of  # noqa: E402  (benchmarks/gains.py: the best layer of a probe)

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
STARTS_FILE = "starts.json"
log = logging.getLogger("spotart")


def run_config(run: Path):
    """The run's train-spot config from its ``config.yaml`` (which also names the command that wrote it)."""
    values = yaml.safe_load((run / "config.yaml").read_text())
    command = values.pop("command", "train-spot")
    if command != "train-spot":
        sys.exit(f"{run}: a {command} run; only train-spot runs build C after other networks")
    with tempfile.TemporaryDirectory() as scratch:  # build_config reads a file: the config without "command"
        path = Path(scratch) / "config.yaml"
        path.write_text(yaml.safe_dump(values))
        return build_config("train-spot", str(path))


def start_discriminator(cfg) -> torch.nn.Module:
    """C at step 0, built in train_spot's order: seed (start_session), autoencoder, repair network, C."""
    with tempfile.TemporaryDirectory() as scratch:
        session = start_session(cfg, scratch, "train-spot", stage="spot", resume=False)
        autoencoder = load_autoencoder(cfg.autoencoder, cfg.image_size)
        models = build_models(cfg, autoencoder, session.runtime)
    return models.discriminator.eval()


def logged_step0(run: Path) -> dict[str, float]:
    with open(run / "metrics.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("step") == 0:
                return {key: value for key, value in row.items() if key.startswith("knn_")}
    return {}


def best_gain(probe: dict[str, float], start: dict[str, float]) -> tuple[float, str, str]:
    """The best layer's top-1 minus the start's best layer's top-1, with the two layers."""
    (trained, top1), (started, start_top1) = (best_of({layer: values[layer] for layer in LAYERS})
                                              for values in (probe, start))
    return top1 - start_top1, trained, started


def probe_start(cfg, run: Path, out: Path, preset_name: str) -> tuple[dict, str, dict]:
    """Rebuild, check and probe one run's start; the probe is shared by runs with the same start (its hash)."""
    discriminator = start_discriminator(cfg)
    digest = fingerprint(discriminator.trunk)
    check = {}
    logged = logged_step0(run)
    monitor = monitor_from_config(cfg)
    if logged and monitor is not None:
        rebuilt = monitor(discriminator.train(), 0)  # the monitor puts the network back in the mode it found
        check = {key: (logged[key], rebuilt.get(key)) for key in logged}
        if any(rebuilt.get(key) is None or not math.isclose(rebuilt[key], value, abs_tol=0.05)
               for key, value in logged.items()):
            sys.exit(f"{run}: the rebuilt start is not the run's: kNN at step 0 logged {logged}, rebuilt {rebuilt}")
    folder = out / f"seed{cfg.seed}-{digest[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "probe" / "probe.json").is_file():
        checkpoint = folder / "start.pt"
        save_checkpoint(checkpoint, {"stage": "spot", "format": CHECKPOINT_FORMAT, "step": 0, "resumable": False,
                                     "config": config_to_dict(cfg),
                                     "discriminator": discriminator.state_dict()})
        preset = get_preset(preset_name)
        data = Path(cfg.data)
        options = ProbeOptions(image_size=preset.image_size, max_train=preset.probe_max_train,
                               linear=LinearSettings(epochs=preset.probe_epochs), workers=preset.workers,
                               keep_features=False, progress=False, seed=cfg.seed)
        run_probe(str(data), str(eval_split(data.parent)), folder / "probe", str(checkpoint), "checkpoint", options)
    return json.loads((folder / "probe" / "probe.json").read_text()), digest, check


def start_table(record: dict, random_row: str) -> str:
    """One markdown row per recorded start: its probe beside the run's and the random row's, and both gains."""
    lines = ["| run | seed | start (sha256) | kNN at step 0, logged / rebuilt | start's probe conv1-conv5 | "
             f"{random_row}'s probe | run's probe | best-layer gain against its start | against {random_row} |",
             "|---|---:|---|---|---|---|---|---|---|"]

    def top1(probe: dict) -> str:
        return " / ".join(f"{probe[layer]:.1f}" for layer in LAYERS)

    for folder, entry in sorted(record.items()):
        row, seed, start = Path(folder), entry["seed"], entry["start"]
        suffix = "" if seed == 0 else f"-seed{seed}"
        trained = json.loads((row / "probe" / "probe.json").read_text())
        random = json.loads((row.parent / f"{random_row}{suffix}" / "probe" / "probe.json").read_text())
        gain, layer, start_layer = best_gain(trained, start)
        random_gain, _, random_layer = best_gain(trained, random)
        knn = ", ".join(f"{key[4:]} {logged:.1f} / {rebuilt:.1f}"
                        for key, (logged, rebuilt) in entry["knn_step0_logged_rebuilt"].items())
        lines.append(f"| {row.name} | {seed} | {entry['sha256'][:12]} | {knn or 'not logged'} | {top1(start)} | "
                     f"{top1(random)} | {top1(trained)} | {gain:+.1f} ({layer} vs {start_layer}) | "
                     f"{random_gain:+.1f} ({layer} vs {random_layer}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="train-spot run folders (ROW/run of a reproduce --work)")
    parser.add_argument("--preset", default="imagenette-64", help="the reproduce preset whose probe settings to use")
    parser.add_argument("--out", type=Path, required=True, help="where the rebuilt starts and their probes go")
    parser.add_argument("--random-row", default="random_official",
                        help="the random row of the same work folder to compare with (ROW or ROW-seedN is found)")
    parser.add_argument("--recheck", action="store_true",
                        help="rebuild and check runs whose start OUT/starts.json already holds")
    parser.add_argument("--table", type=Path, help="also write the table of every recorded start here (markdown)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    index = args.out / STARTS_FILE  # every start probed so far, by row folder: budget_report.py reads it
    record = json.loads(index.read_text()) if index.is_file() else {}
    for run in args.runs:
        run = run.resolve()
        row = run.parent
        if str(row) in record and not args.recheck:
            print(f"{row}: start already in {index} (--recheck rebuilds it)", file=sys.stderr)
            continue
        cfg = run_config(run)
        start, digest, check = probe_start(cfg, run, args.out, args.preset)
        record[str(row)] = {"seed": cfg.seed, "sha256": digest, "start": {layer: start[layer] for layer in LAYERS},
                            "knn_step0_logged_rebuilt": check}
        args.out.mkdir(parents=True, exist_ok=True)
        index.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")  # each run kept as it is done
    table = start_table(record, args.random_row)
    print(table)
    if args.table:
        args.table.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
