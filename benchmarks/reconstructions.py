#!/usr/bin/env python3
"""Write the autoencoder's reconstructions D(E(x)) of a labelled image folder, as a class-folder copy.

Stage 2 never shows the discriminator C a raw image: its "real" images are the frozen autoencoder's
reconstructions (METHOD.md), its "fake" ones repaired decodings. Probing C on raw images therefore asks its
features to work on a kind of image it has never seen, which at small scale (a blurry autoencoder) may cost
accuracy that the paper's sharp full-budget autoencoder would not. Probing on reconstructions separates the two:

    python benchmarks/reconstructions.py --autoencoder AE.pt --data ../shared/data/cifar10/train \
        --out /tmp/recon/train --image-size 32 --max-images 20000
    python benchmarks/reconstructions.py --autoencoder AE.pt --data ../shared/data/cifar10/test \
        --out /tmp/recon/test --image-size 32
    spotart probe --checkpoint STAGE2.pt --train /tmp/recon/train --val /tmp/recon/test --out /tmp/recon/probe

``--max-images`` keeps the same fixed subset that ``spotart probe --max-train`` (seed 0) uses, so the two probes
train on the same images. Images are resized to the autoencoder's size whole (no crop): the probe then takes its
usual centre crop of the reconstruction, as it does of the raw image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spotart.data import FolderSource, to_rgb
from spotart.evaluation.datasets import subsample
from spotart.train.stage2 import load_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--autoencoder", required=True, help="a train-ae or train-spot checkpoint")
    parser.add_argument("--data", required=True, help="class folders: DIR/<class>/<image>")
    parser.add_argument("--out", required=True, help="where the reconstructions go, as OUT/<class>/<n>.png")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--max-images", type=int, help="the fixed subset of spotart probe --max-train (seed 0)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    source = FolderSource(Path(args.data))
    if not source.classes:
        parser.error(f"{args.data} has no class folders")
    indices = subsample(len(source), args.max_images, seed=0) or list(range(len(source)))
    autoencoder = load_autoencoder(args.autoencoder, args.image_size).eval()
    out = Path(args.out)
    for name in source.classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    written = 0
    for start in range(0, len(indices), args.batch_size):
        chunk = indices[start:start + args.batch_size]
        images, labels = [], []
        for index in chunk:
            image, label = source.load(index)
            image = to_rgb(image).resize((args.image_size, args.image_size), Image.BICUBIC)
            images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
            labels.append(label)
        batch = torch.stack(images).float().div(127.5).sub(1.0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            recon = autoencoder(batch).float()
        pixels = recon.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for index, label, array in zip(chunk, labels, pixels):
            Image.fromarray(array).save(out / source.classes[label] / f"{index:06d}.png")
        written += len(chunk)
    print(f"{written} reconstructions in {out}")


if __name__ == "__main__":
    main()
