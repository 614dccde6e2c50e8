#!/usr/bin/env python3
"""The kNN monitor's numbers (k = 20, weighted cosine vote, per layer) for saved checkpoints and random inits.

`train-spot --set knn_train=... --set knn_val=...` logs `knn_conv2`, `knn_conv3`, `knn_conv5` while it trains
(step 0 included). This gives the same measurement, on the same fixed image subsets, for other random
initialisations (the baseline a trajectory should be read against) and for any checkpoints, e.g. the periodic ones
of a long run, or of runs logged before the monitor measured step 0:

    python benchmarks/knn_checkpoints.py --train ../shared/data/cifar10/train --val ../shared/data/cifar10/test \
        --image-size 32 --random-seeds 0,1,2 RUN/checkpoints/step_001000.pt RUN/checkpoints/latest.pt

Prints one line per network and, with --json, writes them as {name: {layer: top-1 %}}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spotart.evaluation.backbones import load_backbone
from spotart.evaluation.knn import KnnMonitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", help="train-spot or train-supervised checkpoints")
    parser.add_argument("--train", required=True, help="labelled memory images (class folders)")
    parser.add_argument("--val", required=True, help="labelled query images (same classes)")
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--random-seeds", default="", help="comma-separated seeds of random-init discriminators")
    parser.add_argument("--max-train", type=int, default=5000, help="memory images (train-spot's knn_max_train)")
    parser.add_argument("--max-val", type=int, default=2000, help="query images (train-spot's knn_max_val)")
    parser.add_argument("--layers", default="conv2,conv3,conv5", help="comma-separated (default conv2,conv3,conv5)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    monitor = KnnMonitor(args.train, args.val, args.image_size, every=1, max_train=args.max_train,
                         max_val=args.max_val, layers=tuple(args.layers.split(",")))
    networks = [(f"random init (seed {seed})", None, int(seed)) for seed in args.random_seeds.split(",") if seed]
    networks += [(str(path), path, 0) for path in args.checkpoints]
    results = {}
    for name, checkpoint, seed in networks:
        backbone = load_backbone(checkpoint, "checkpoint" if checkpoint else "random", args.image_size, seed)
        row = monitor.evaluate(backbone.net)
        results[name] = {key.removeprefix("knn_"): round(value, 2) for key, value in row.items()}
        print(f"{name}: kNN top-1 " + ", ".join(f"{k} {v:.2f}%" for k, v in results[name].items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
