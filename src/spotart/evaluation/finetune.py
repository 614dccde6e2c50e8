"""``spotart finetune``: the STL-10 transfer protocols (METHOD.md, "Evaluation protocols").

- ``full`` (the paper, ~80% on STL-10): conv1..conv5 are fine-tuned together with a new MLP head
  (``classifier.mlp_head``), with the training augmentation, Adam and the official linear decay.
- ``linear`` (the later official script): one linear layer on the frozen conv5 map (flattened: 256x6x6 at 96 px).
  It runs as a probe of conv5 (features extracted once, cached, heads trained per fold) and checks that the trunk
  did not change.

STL-10 defines ten training folds of 1,000 images each (``stl10_binary/fold_indices.txt``: ten lines of
space-separated indices into the 5,000 training images); a model is trained on each fold, tested on all test
images, and the result is reported as mean ± standard deviation over the folds. Any fold file in that format works
with a class-folder training set too (indices into its sorted file list).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import CommonConfig
from ..data import Augment, ImageDataset, SeededSampler, make_loader
from ..models import Trunk
from ..train.device import Runtime
from ..train.nonfinite import NonFiniteGuard
from ..train.optimisation import lr_factor, make_adam, set_lr
from ..train.progress import batches
from .backbones import Backbone, check_unchanged, load_backbone
from .classifier import TrunkClassifier, classifier_step, evaluate_top1
from .datasets import (
    DEFAULT_DATA_ROOT,
    LabelledSource,
    SubsetSource,
    check_same_classes,
    decode_images,
    open_labelled,
)
from .errors import EvaluationError
from .features import cached_features, runtime_for
from .linear import LinearSettings, fit_linear_probe

log = logging.getLogger("spotart")

MODES = ("full", "linear")
FOLD_FILE = Path("stl10_binary") / "fold_indices.txt"


@dataclass
class FinetuneOptions:
    mode: str = "full"
    folds: str = "auto"  # auto (STL-10's own folds when the training data is stl10) | none | PATH
    max_folds: int | None = None  # only the first N folds (a quick check)
    image_size: int | None = None
    epochs: int = 30  # full mode: passes over the (fold's) training images
    batch_size: int = 64
    lr: float = 1e-4  # full mode: Adam, official betas/eps, linearly decayed to 1% over 90% of the steps
    hidden: int = 4096  # full mode: width of the MLP head (0: a single linear layer)
    linear: LinearSettings = field(default_factory=LinearSettings)  # linear mode
    workers: int = 2
    precision: str = "auto"
    seed: int = 0
    data_root: str = DEFAULT_DATA_ROOT
    progress: bool = True


def read_folds(path: str | Path) -> list[list[int]]:
    """Fold index lists from a ``fold_indices.txt`` file, or from an STL-10 root (or its ``stl10_binary``)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "fold_indices.txt", path / FOLD_FILE):
        if candidate.is_file():
            path = candidate
            break
    else:
        raise FileNotFoundError(f"fold file not found: {path} (expected fold_indices.txt or an STL-10 root "
                                f"holding {FOLD_FILE})")
    folds = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            folds.append([int(token) for token in line.split()])
        except ValueError:
            raise EvaluationError(f"{path} line {number}: expected space-separated image indices, got "
                                  f"{line.strip()[:40]!r}") from None
    if not folds:
        raise EvaluationError(f"{path} holds no folds")
    return folds


def resolve_folds(spec: str, train: str, data_root: str, size: int) -> list[list[int]] | None:
    """``auto``: STL-10's folds when training on stl10, else none; ``none``; or a fold file / STL-10 root."""
    if spec == "none":
        return None
    if spec == "auto":
        if not train.lower().startswith("stl10"):
            return None
        spec = str(Path(data_root).expanduser() / FOLD_FILE)
    folds = read_folds(spec)
    for number, fold in enumerate(folds):
        bad = [i for i in fold if not 0 <= i < size]
        if bad:
            raise EvaluationError(f"fold {number} refers to image {bad[0]}, but the training data has {size} images")
    return folds


def run_finetune(train: str, test: str, out: str | Path, checkpoint: str | None = None, init: str = "checkpoint",
                 options: FinetuneOptions = FinetuneOptions()) -> dict[str, Any]:
    """Train and test on each fold (or once on all training images); write ``OUT/finetune.json``."""
    if options.mode not in MODES:
        raise EvaluationError(f"mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    start = time.perf_counter()
    out = Path(out)
    backbone = load_backbone(checkpoint, init, options.image_size, options.seed)
    if options.mode == "full" and backbone.kind == "autoencoder":
        raise EvaluationError("full fine-tuning trains the discriminator's conv1..conv5: pass a train-spot, "
                              "train-supervised or train-rotnet checkpoint (or --init random)")
    train_data = open_labelled(train, "train", "training", options.data_root)
    test_data = open_labelled(test, "test", "test", options.data_root)
    check_same_classes(train_data, test_data)
    folds = resolve_folds(options.folds, train, options.data_root, len(train_data))
    if folds and options.max_folds:
        folds = folds[: options.max_folds]
    runtime = runtime_for(options.precision)
    log.info("finetune (%s) of %s at %d px on %s: %s", options.mode, backbone.origin, backbone.image_size,
             runtime.describe(), f"{len(folds)} folds" if folds else "all training images")
    if options.mode == "linear":
        accuracies = _linear_on_conv5(backbone, train_data, test_data, folds, out, runtime, options)
    else:
        accuracies = _fine_tune_all(backbone, train_data, test_data, folds, runtime, options)
    settings = {k: v for k, v in asdict(options).items() if k not in ("progress", "data_root")}
    settings["linear"]["weight_decays"] = list(options.linear.weight_decays)
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    report = {
        "mode": options.mode,
        "top1_mean": round(mean, 2),
        "top1_std": round(std, 2),
        "folds": [round(a, 2) for a in accuracies] if folds else None,
        "model": backbone.kind,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "init": init,
        "image_size": backbone.image_size,
        "train": train_data.name,
        "test": test_data.name,
        "options": settings,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune.json").write_text(json.dumps(report, indent=2))
    spread = f" ± {std:.2f} (sample std over {len(accuracies)} folds)" if folds else ""
    print(f"finetune ({options.mode}) of {report['checkpoint'] or 'a random init'}: test top-1 {mean:.2f}%{spread}")
    return report


def _linear_on_conv5(backbone: Backbone, train: LabelledSource, test: LabelledSource, folds: list[list[int]] | None,
                     out: Path, runtime: Runtime, options: FinetuneOptions) -> list[float]:
    """One linear layer on frozen conv5 per fold, on features extracted once."""
    layer = backbone.layers[-1]
    before = backbone.fingerprint()
    backbone.to(runtime.device, memory_format=runtime.memory_format)
    common = dict(cache_root=out / "features", pool="avg", runtime=runtime, batch_size=128, workers=options.workers,
                  seed=options.seed, layers=(layer,), progress=options.progress)
    train_cache = cached_features(backbone, before, train, "train", **common)
    test_cache = cached_features(backbone, before, test, "test", **common)
    if folds and train_cache.skipped:
        raise EvaluationError(f"{train_cache.skipped} training images could not be read, so fold indices no longer "
                              "point at the right images: repair or remove them first")
    train_x, train_y = train_cache.load(layer)
    test_x, test_y = test_cache.load(layer)
    accuracies = []
    for number, fold in enumerate(folds or [None]):
        pick = torch.tensor(fold) if fold is not None else torch.arange(len(train_y))
        fit = fit_linear_probe(train_x[pick], train_y[pick], test_x, test_y, len(train.classes), options.linear)
        accuracies.append(fit.top1)
        log.info("fold %d: test top-1 %.2f%% (weight decay %g)", number, fit.top1, fit.weight_decay)
    check_unchanged(before, backbone.net, "trunk")
    return accuracies


def _fine_tune_all(backbone: Backbone, train: LabelledSource, test: LabelledSource, folds: list[list[int]] | None,
                   runtime: Runtime, options: FinetuneOptions) -> list[float]:
    """conv1..conv5 and a new MLP head trained on each fold, from the same starting weights every time."""
    size = backbone.image_size
    test_images, test_labels = decode_images(test.source, size, workers=options.workers)
    start_state = {k: v.detach().cpu().clone() for k, v in backbone.net.state_dict().items()}
    accuracies = []
    for number, fold in enumerate(folds or [None]):
        source = SubsetSource(train.source, fold) if fold is not None else train.source
        with torch.random.fork_rng(devices=[]):  # the new head's init: per fold, leaving the global state alone
            torch.manual_seed(options.seed + number)
            trunk = Trunk(getattr(backbone.net, "padding", "symmetric"))  # the padding is not in the state dict
            trunk.load_state_dict(start_state)
            model = TrunkClassifier(trunk, size, len(train.classes), options.hidden)
        model.to(runtime.device, memory_format=runtime.memory_format)
        train_classifier(model, source, size, runtime, options, seed=options.seed + number)
        accuracies.append(evaluate_top1(model, test_images, test_labels, runtime))
        log.info("fold %d: test top-1 %.2f%%", number, accuracies[-1])
    return accuracies


def train_classifier(model: TrunkClassifier, source, image_size: int, runtime: Runtime, options: FinetuneOptions,
                     seed: int) -> None:
    """``options.epochs`` passes of augmented images (the training augmentation) with Adam and linear decay."""
    batch_size = min(options.batch_size, len(source))
    sampler = SeededSampler(len(source), batch_size, seed)
    loader = make_loader(ImageDataset(source, Augment(image_size)), sampler, batch_size, options.workers,
                         pin_memory=False)
    optimizer = make_adam(model, CommonConfig(lr=options.lr))
    total = options.epochs * sampler.batches_per_epoch
    guard = NonFiniteGuard.for_device(runtime.device)  # deferred on CUDA: no host sync inside a step
    model.train()
    data = batches(loader, sampler, 0, sampler.batches_per_epoch)
    step = 0
    while step < total:
        _, batch = next(data)
        if batch["images"].shape[0] < 2:  # the head's BatchNorm needs two images
            continue
        set_lr(optimizer, options.lr, lr_factor(step, total))
        metrics = classifier_step(model, runtime.to_device(batch["images"]), batch["labels"].to(runtime.device),
                                  optimizer, runtime, guard, step)
        step += 1
        if step % 50 == 0 or step == total:
            guard.check(step)  # a deferred (CUDA) guard logs its skipped steps here
            log.info("fine-tune step %d/%d: loss %.3f, batch accuracy %.2f", step, total, metrics["loss"],
                     metrics["acc"])
