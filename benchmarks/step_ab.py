"""Images/s of one training step, from this checkout and from another source tree, interleaved in one run.

    python benchmarks/step_ab.py --other /tmp/main0/src --image-size 64 --config configs/official_stl10.yaml \
        --ae-config configs/official_stl10_ae.yaml --set precision=auto --rounds 3 --steps 5

Each round runs each tree in a fresh process (``--stage``, config, size, batch as given; 2 untimed steps, then
``--steps`` timed ones) and alternates which goes first; the table gives each tree's median and the ratio. A config
key the other tree does not know is dropped there with a note (e.g. a key added since). Stage 2 runs on the
autoencoder that ``--ae-config`` and the ``--set`` keys only stage 1 has describe, as ``spotart bench`` builds it; a
tree whose bench cannot build it runs its default autoencoder, noted the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from step_options import add_step_arguments, config_pairs, header

from spotart.bench import placeholder_pairs

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import dataclasses, inspect, json, sys, tempfile, time, torch, yaml
from spotart.bench import _runtime, _stage1, _stage2
from spotart.config import build_config, config_class
args = json.loads(sys.argv[1])
dropped = []

def keys_of(command):
    return {field.name for field in dataclasses.fields(config_class(command))}

def known_yaml(path, known):
    # the YAML without the keys this tree does not know (each noted), so that an older tree still runs it
    if not path:
        return path
    values = yaml.safe_load(open(path))
    unknown = [key for key in values if key not in known]
    if not unknown:
        return path
    dropped.extend(f"{key} ({path})" for key in unknown)
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump({key: value for key, value in values.items() if key in known}, handle)
    handle.close()
    return handle.name

command = "train-spot" if args["stage"] == 2 else "train-ae"
known = keys_of(command)
# stage 2 builds the autoencoder it freezes from --ae-config and the keys only train-ae has, as bench.build_step
# does, in trees whose bench takes a stage-1 config; older trees get the default autoencoder, and a note
ae_known = keys_of("train-ae") if args["stage"] == 2 else set()
if ae_known and "ae_cfg" not in inspect.signature(_stage2).parameters:
    dropped += [f"--ae-config {args['ae_config']}"] if args["ae_config"] else []
    ae_known = set()
pairs = [p for p in args["pairs"] if p.split("=")[0] in known]
ae_pairs = [p for p in args["pairs"] if p.split("=")[0] in ae_known - known]
dropped += [p for p in args["pairs"] if p.split("=")[0] not in known | ae_known]
cfg = build_config(command, known_yaml(args["config"], known), set_pairs=pairs)
extra = {}
if "gemm_weight_grads" in inspect.signature(_runtime).parameters:  # trees since issue 25's matrix-product gradients
    extra["gemm_weight_grads"] = cfg.gemm_weight_grads
runtime = _runtime(cfg.precision, cfg.channels_last, torch.device("cpu"), **extra)
images = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size) * 2 - 1
if args["stage"] == 1:
    step = _stage1(cfg, runtime, images)
elif ae_known:
    ae_cfg = build_config("train-ae", known_yaml(args["ae_config"], ae_known),
                          set_pairs=args["base_pairs"] + ae_pairs)
    step = _stage2(cfg, runtime, images, ae_cfg=ae_cfg)
else:
    step = _stage2(cfg, runtime, images)
for _ in range(2):
    step()
start = time.perf_counter()
for _ in range(args["steps"]):
    step()
rate = cfg.batch_size * args["steps"] / (time.perf_counter() - start)
print(json.dumps({"images_per_s": rate, "dropped": dropped}))
"""


def run(src: str, payload: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", required=True, help="the other tree's src/ folder (e.g. a git worktree)")
    add_step_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    payload = {"stage": args.stage, "config": args.config, "ae_config": args.ae_config, "steps": args.steps,
               "pairs": config_pairs(args), "base_pairs": placeholder_pairs(args.image_size, args.batch_size)}
    trees = {"this": str(REPO / "src"), "other": args.other}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    notes = set()
    for index in range(args.rounds):
        order = list(trees) if index % 2 == 0 else list(reversed(trees))
        for name in order:
            result = run(trees[name], payload)
            rates[name].append(result["images_per_s"])
            notes.update(f"{name}: dropped {d}" for d in result["dropped"])
    this, other = statistics.median(rates["this"]), statistics.median(rates["other"])
    print(header(args))
    print(f"this tree:  {this:.1f} img/s (runs {', '.join(f'{r:.1f}' for r in rates['this'])})")
    print(f"other tree: {other:.1f} img/s (runs {', '.join(f'{r:.1f}' for r in rates['other'])}) [{args.other}]")
    print(f"ratio this/other: {this / other:.2f}x")
    for note in sorted(notes):
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
