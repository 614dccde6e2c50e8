"""``spotart probe``: linear classifiers on every frozen layer, all in one run (METHOD.md, "Evaluation protocols").

The network is loaded, hashed (weights and BatchNorm statistics), run in eval mode without gradients to extract
pooled features of both splits (cached), and one linear head per layer is trained on the cached features. At the
end the network is hashed again: a probe whose network changed fails instead of reporting numbers, and
``probe.json`` records ``"trunk_unchanged": true`` with the hash, which is the proof that the trunk stayed frozen.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backbones import check_unchanged, load_backbone
from .datasets import DEFAULT_DATA_ROOT, check_same_classes, open_labelled
from .features import cached_features, layer_shapes, runtime_for
from .linear import LinearSettings, fit_linear_probe

log = logging.getLogger("spotart")


@dataclass
class ProbeOptions:
    image_size: int | None = None  # default: the size the checkpoint was trained at (96 for --init random)
    pool: str = "avg"
    linear: LinearSettings = field(default_factory=LinearSettings)
    max_train: int | None = None  # a fixed random subset of the training split (None: all)
    max_val: int | None = None
    batch_size: int = 128
    workers: int = 2
    precision: str = "auto"
    seed: int = 0  # random init, subsets, held-out split
    keep_features: bool = True  # keep the feature cache so that a re-run only trains the heads
    data_root: str = DEFAULT_DATA_ROOT
    progress: bool = True
    random_config: dict[str, str] | None = None  # --init random: the trunk's disc_init, disc_padding (train-spot)


def run_probe(train: str, val: str, out: str | Path, checkpoint: str | None = None, init: str = "checkpoint",
              options: ProbeOptions = ProbeOptions()) -> dict[str, Any]:
    """Probe every layer; write ``OUT/probe.json`` and return its contents."""
    start = time.perf_counter()
    out = Path(out)
    backbone = load_backbone(checkpoint, init, options.image_size, options.seed, options.random_config)
    before = backbone.fingerprint()
    train_data = open_labelled(train, "train", "training", options.data_root)
    val_data = open_labelled(val, "test", "evaluation", options.data_root)
    check_same_classes(train_data, val_data)
    runtime = runtime_for(options.precision)
    backbone.to(runtime.device, memory_format=runtime.memory_format)
    shapes = layer_shapes(backbone, backbone.image_size)
    log.info("probing %s (%s) at %d px on %s: %s", backbone.origin, backbone.kind, backbone.image_size,
             runtime.describe(), ", ".join(f"{n} {s.describe()}" for n, s in shapes.items()))

    cache_root = out / "features"
    common = dict(cache_root=cache_root, pool=options.pool, runtime=runtime, batch_size=options.batch_size,
                  workers=options.workers, seed=options.seed, progress=options.progress)
    caches = {
        "train": cached_features(backbone, before, train_data, "train", max_images=options.max_train, **common),
        "val": cached_features(backbone, before, val_data, "val", max_images=options.max_val, **common),
    }
    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for layer in backbone.layers:
        train_x, train_y = caches["train"].load(layer)
        val_x, val_y = caches["val"].load(layer)
        fit = fit_linear_probe(train_x, train_y, val_x, val_y, len(train_data.classes), options.linear)
        results[layer] = round(fit.top1, 2)
        details[layer] = {"dims": shapes[layer].dims, "pooled": shapes[layer].describe(),
                          "train_top1": round(fit.train_top1, 2), "weight_decay": fit.weight_decay,
                          "holdout_top1": fit.holdout_top1}
        log.info("%s: top-1 %.2f%% (train %.2f%%, weight decay %g)", layer, fit.top1, fit.train_top1,
                 fit.weight_decay)
    after = check_unchanged(before, backbone.net, "trunk" if backbone.kind != "autoencoder" else "encoder")

    report = {
        **results,
        "trunk_unchanged": True,
        "trunk_sha256": after,
        "model": backbone.kind,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "init": init,
        "origin": backbone.origin,  # the checkpoint, or the random init with its seed and scheme
        "image_size": backbone.image_size,
        "train": train_data.name,
        "val": val_data.name,
        "classes": len(train_data.classes),
        "train_images": caches["train"].count,
        "val_images": caches["val"].count,
        "pool": options.pool,
        "linear": {**asdict(options.linear), "weight_decays": list(options.linear.weight_decays)},
        "layers": details,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(report, indent=2))
    if not options.keep_features:
        for cache in caches.values():
            cache.remove()
    print(format_table(report))
    return report


def format_table(report: dict[str, Any]) -> str:
    """The per-layer top-1 table printed at the end of a probe."""
    lines = [f"linear probe of {report['checkpoint'] or 'a random init'} ({report['model']}, {report['image_size']} px)"
             f": {report['train_images']} training / {report['val_images']} evaluation images, "
             f"{report['classes']} classes",
             f"{'layer':<7}{'pooled features':>22}{'top-1 %':>10}"]
    for layer, info in report["layers"].items():
        lines.append(f"{layer:<7}{info['pooled']:>22}{report[layer]:>10.2f}")
    lines.append(f"trunk unchanged: yes (sha256 {report['trunk_sha256'][:16]}, weights and BatchNorm statistics)")
    return "\n".join(lines)
