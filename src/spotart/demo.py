"""``spotart demo``: both stages, a few minutes, offline, on photographs that ship with scikit-image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from .config import build_config
from .outputs import OutputError

log = logging.getLogger("spotart")

# Colour and greyscale photographs bundled inside scikit-image (no download needed).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera",
          "coins", "moon", "clock", "brick", "grass", "gravel", "stereo_motorcycle", "colorwheel")
DEMO_SIZE = 64  # 4x4 mask grid: several times more steps per minute than 96 px on a 2-core CPU


def write_demo_images(folder: Path, short_side: int = 128) -> int:
    """Each photograph, resized to a ``short_side`` shorter side, plus its four overlapping quadrants."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in PHOTOS:
        try:
            array = getattr(skimage.data, name)()
        except Exception as err:  # noqa: BLE001 - a missing optional photo only shrinks the demo set
            log.warning("scikit-image photo %s unavailable (%s): skipped", name, type(err).__name__)
            continue
        if isinstance(array, tuple):  # stereo pairs
            array = array[0]
        img = Image.fromarray(np.asarray(array)).convert("RGB")
        scale = short_side / min(img.size)
        img = img.resize((max(short_side, round(img.width * scale)), max(short_side, round(img.height * scale))),
                         Image.LANCZOS)
        w, h = img.size
        views = [img] + [img.crop((x, y, x + w * 2 // 3, y + h * 2 // 3)) for x in (0, w // 3) for y in (0, h // 3)]
        for i, view in enumerate(views):
            view.save(folder / f"{name}_{i}.png")
            count += 1
    return count


def run_demo(out: str, minutes: float = 4.0) -> dict:
    from .train.stage1 import train_autoencoder
    from .train.stage2 import train_spot

    root = Path(out)
    if (root / "spot" / "checkpoints" / "latest.pt").exists():
        raise OutputError(f"{root} already holds a finished demo: remove it or pass --out elsewhere")
    data = root / "photos"
    count = write_demo_images(data)
    log.info("demo: %d views of %d scikit-image photographs in %s", count, len(PHOTOS), data)
    # Step counts sized so that both stages take about `minutes` on a 2-core AMX CPU (about 40/60).
    ae_steps = max(20, int(minutes * 60))
    spot_steps = max(20, int(minutes * 45))
    common = [f"data={data}", f"image_size={DEMO_SIZE}", "batch_size=16", "num_workers=1",
              "log_every=10", "image_every=50", "checkpoint_every=100"]
    ae_cfg = build_config("train-ae", set_pairs=common + [f"steps={ae_steps}", "lr=1e-3"])
    ae_ckpt = train_autoencoder(ae_cfg, str(root / "autoencoder"), resume=False)
    # the small-scale recipe of configs/small_scale.yaml: with the paper's losses, a few hundred steps are not
    # enough for C to hold its own against R (benchmarks/RESULTS.md)
    recipe = ["official_loss_quirk=true", f"warmup_steps={spot_steps // 5}"]
    spot_cfg = build_config("train-spot", set_pairs=common + recipe + [f"steps={spot_steps}", f"autoencoder={ae_ckpt}"])
    spot_ckpt = train_spot(spot_cfg, str(root / "spot"), resume=False)
    rows = [json.loads(line) for line in (root / "spot" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    summary = {"autoencoder": str(ae_ckpt), "discriminator": str(spot_ckpt), "final": last}
    print(f"\ndemo finished: run directory {root}")
    print(f"  stage 1 checkpoint: {ae_ckpt}")
    print(f"  stage 2 checkpoint: {spot_ckpt}")
    print(f"  discriminator real/fake accuracy {last['disc_acc']:.2f} (chance 0.50); mask accuracy on repaired "
          f"images {last['mask_acc_fake']:.2f} (best constant guess {last['mask_chance_fake']:.2f})")
    print(f"  image grids: {root / 'spot' / 'images'}; TensorBoard: tensorboard --logdir {root}")
    return summary
