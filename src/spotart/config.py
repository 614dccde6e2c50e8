"""Every setting of both training stages, one dataclass per stage.

Each default says where it comes from: the paper (Jenni & Favaro, CVPR 2018), the authors' official
TensorFlow code ("official"), or our own choice and why. YAML files and ``--set key=value`` overrides
are type-checked against these fields, and the resolved config is saved into every run directory.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value: the message names the key and what is allowed."""


@dataclass
class CommonConfig:
    # --- data ---
    data: str = ""  # a folder of images, or "stl10" / "cifar10" (torchvision, see data_root)
    data_root: str = "~/.cache/spotart/datasets"  # where torchvision datasets live on disk
    download: bool = False  # fetch a torchvision dataset if missing; off so nothing is downloaded silently
    stl10_split: str = "unlabeled"  # STL-10 split used for pretraining (paper: the 100k unlabeled images)
    image_size: int = 96  # paper: 96 (STL-10); 64 and 32 (CIFAR-10) are supported too
    num_workers: int = 2  # data-loader processes; decoding 96 px JPEGs is cheap next to a step
    # --- optimisation (paper / official) ---
    batch_size: int = 256  # official: 256 over 2 GPUs
    steps: int = 0  # total optimiser steps; 0 means "use epochs"
    epochs: int = 500  # official: 500 epochs of STL-10
    lr: float = 3e-4  # official Adam learning rate
    beta1: float = 0.5  # official
    beta2: float = 0.999  # official
    adam_eps: float = 1e-5  # official (TF default would be 1e-8)
    weight_decay: float = 5e-5  # official L2 penalty, coupled: the gradient of 5e-5/2*||w||^2 as in TF's l2_loss
    lr_decay_fraction: float = 0.9  # official: linear decay over the first 90% of steps ...
    lr_final_factor: float = 0.01  # ... down to 1% of the initial rate
    # --- augmentation (official, both stages) ---
    crop_scale_min: float = 0.33  # random resized crop, area fraction
    flip: bool = True
    brightness_delta: float = 32.0 / 255.0  # additive, as TF's random_brightness
    saturation_range: tuple[float, float] = (0.5, 1.5)  # multiplicative
    # --- engineering (our choices) ---
    precision: str = "auto"  # auto | bf16 | fp32: auto picks bf16 autocast where the hardware runs it fast
    channels_last: str = "auto"  # auto | on | off
    compile: bool = False  # torch.compile the models (pays off on GPU; slow to warm up on CPU)
    # small_maps: on the CPU, weight gradients of convolutions with small output maps (<= 6 x 6) as one matrix
    # product each (models/gemm_conv.py): 2.5-4.6x faster per layer in isolation, but no faster a step on the AMX
    # machine (RESULTS.md, issue 25), hence off by default; off: the library's kernels everywhere
    gemm_weight_grads: str = "off"
    gpu_augment: bool = False  # our addition: the augmentation as batched ops on the device (augment_device.py)
    seed: int = 0
    deterministic: bool = False  # deterministic kernels: a resumed run then matches an uninterrupted one bit for bit
    sync_batchnorm: bool = False  # under torchrun on GPUs: BatchNorm statistics over the global batch, not per rank
    log_every: int = 10  # steps between metrics.jsonl / TensorBoard rows
    image_every: int = 200  # steps between image grids
    checkpoint_every: int = 500  # steps between periodic checkpoints (latest.pt is written at each of these too)
    keep_checkpoints: int = 3  # periodic checkpoints kept on disk (latest.pt always kept)
    snapshot_optimizer: bool = False  # periodic snapshots hold the optimiser states too (ours: off, they are 2/3 of
    # a stage-2 checkpoint and only resume needs them; latest.pt always has them)
    progress: bool = True  # tqdm progress bar


@dataclass
class AEConfig(CommonConfig):
    """Stage 1: the autoencoder E, D."""

    recon_weight: float = 30.0  # official: 30 * MSE
    # --- fidelity to the official code (FIDELITY.md D14); the defaults keep this project's earlier behaviour ---
    ae_init: str = "default"  # default (PyTorch) | official (TF variance scaling, FAN_AVG: AutoEncoder.py:17,26)
    decay_output_bias: bool = False  # L2 also on D5's bias, as officially (AutoEncoder.py:25); ours: weights only
    tf_adam_epsilon: bool = False  # eps placed as TF's Adam places it (MultiGPUTrainer.py:50; D10); ours: PyTorch's
    bias_grad_factor: float = 1.0  # official: 2, bias gradients doubled (AETrainer.py:41-43; D11)
    # the decoder's bilinear x2 (D15): half_pixel (ours so far: PyTorch's F.interpolate) | tf_legacy (official,
    # layers.py:38: TF1's resize_images without half-pixel centres); stage 2 takes it from the stage-1 checkpoint
    decoder_upsampling: str = "half_pixel"


@dataclass
class MonitorConfig(CommonConfig):
    """The kNN monitor of a trunk's features while it trains (our addition; off unless a labelled folder is given).

    Stages that train the discriminator's trunk (stage 2, and the pretext-task baselines) take these keys.
    """

    knn_train: str = ""  # labelled class folder used as the kNN memory (default: the training data)
    knn_val: str = ""  # labelled class folder to classify
    knn_every: int = 500  # steps between kNN evaluations (step 0 is always measured)
    knn_max_train: int = 5000  # cap on memory images (feature extraction costs a forward pass each)
    knn_max_val: int = 2000
    knn_layers: tuple[str, ...] = ("conv2", "conv3", "conv5")  # conv5 alone misleads at small budgets
    # checkpoints/best_knn.pt: the networks at the step whose best monitored layer scored highest (train/best_knn.py)
    keep_best_knn: bool = True


@dataclass
class SpotConfig(MonitorConfig):
    """Stage 2: damage, repair, discriminate (E and D frozen)."""

    autoencoder: str = ""  # stage-1 checkpoint (required)
    # --- damage ---
    drop_rate: float = 0.7  # official theta: probability that a cell is dropped (an earlier release used 0.6)
    # --- ablations (paper Table 1); each is one switch ---
    repair: str = "masked"  # masked (full model) | unmasked (ablation c) | none (ablation b: damage only)
    passes: int = 1  # 2 = damage and repair twice (ablation d)
    mask_loss_weight: float = 0.1  # paper: 0.1; 0 = the "no mask loss" ablation
    # R's objective (FIDELITY.md sect. 1): paper (non-saturating GAN loss on the fakes + 30 MSE) | paper_plus_c (that
    # plus C's loss, what official_loss_quirk=true meant: R's adversarial term then weighs 2x the official) |
    # official (the official total: C's loss + the cross-entropy of all 2B images with flipped labels + 30 MSE)
    repair_loss: str = "paper"
    # --- loss weights (paper / official) ---
    gan_weight: float = 1.0
    recon_weight: float = 30.0  # R's MSE to x on kept pixels
    # --- balance of the adversarial game (our additions; the defaults leave the paper's schedule) ---
    # identity (ours: last conv zero, fakes start as plain damage) | default (PyTorch) | official (TF variance
    # scaling on both convs, SpotNet.py:26,34: fakes start noisy)
    repair_init: str = "identity"
    warmup_steps: int = 0  # steps of C alone on damage without repair before R joins
    repair_lr_factor: float = 1.0  # R's learning rate relative to C's
    repair_every: int = 1  # update R once every this many steps (C is updated every step)
    # default (PyTorch) | normal (N(0, 0.01) weights as TF examples use) | official (Glorot-uniform with TF's fans,
    # biases 0.1: AlexNet.py:16-23)
    disc_init: str = "default"
    # --- the discriminator's architecture (FIDELITY.md D8, D9); the defaults keep this project's earlier one ---
    # where conv5's cells sit (models/discriminator.py): symmetric (ours: 7.5 px before the mask cell's centre) |
    # tf_same (official, train_stl10.py:9: 6.5 px after) | centred (our addition: 0.5 px after)
    disc_padding: str = "symmetric"
    fc1_bn_scale: bool = True  # a learned scale on fc_1's BatchNorm; official: none (AlexNet.py:9-15)
    # --- the official optimiser's details (FIDELITY.md D10, D11); the defaults keep PyTorch's Adam as it is ---
    tf_adam_epsilon: bool = False  # eps placed as TF's Adam places it (MultiGPUTrainer.py:50); ours: PyTorch's
    bias_grad_factor: float = 1.0  # official: 2, bias gradients of C and R doubled (SDNetTrainer.py:74-76)


@dataclass
class RotNetConfig(MonitorConfig):
    """The RotNet yardstick (Gidaris et al., ICLR 2018) on the discriminator's trunk: predict 0/90/180/270 degrees.

    Data, augmentation, Adam and the schedule are the common keys above, as for the method's own stages.
    """

    rotnet_hidden: int = 4096  # RotNet's official AlexNet (architectures/AlexNet.py): two fc layers of 4096
    # a time budget (our addition): end at a checkpoint after this many training seconds; 0 = steps alone. The
    # learning rate then decays over whichever budget, steps or seconds, ends first.
    max_seconds: float = 0.0
    # the trunk exactly as train-spot builds it (same keys, same meanings): its init (default | normal | official;
    # the head keeps RotNet's, PyTorch's default) and where conv5's cells sit (symmetric | tf_same | centred)
    disc_init: str = "default"
    disc_padding: str = "symmetric"


# What a RotNet run beside a stage-2 row takes from that row's config: every key the two share (data, augmentation,
# optimiser and schedule, precision, the kNN monitor's, the trunk's init and padding), but not its own budget and seed
ROTNET_SHARED_KEYS = frozenset(field.name for field in fields(RotNetConfig)) - {"steps", "epochs", "seed",
                                                                               "max_seconds"}

_CONFIG_CLASSES = {"train-ae": AEConfig, "train-spot": SpotConfig, "train-rotnet": RotNetConfig}

_CHOICES: dict[str, tuple[str, ...]] = {
    "precision": ("auto", "bf16", "fp32"),
    "channels_last": ("auto", "on", "off"),
    "gemm_weight_grads": ("off", "small_maps"),
    "repair": ("masked", "unmasked", "none"),
    "disc_init": ("default", "normal", "official"),
    "repair_init": ("identity", "default", "official"),
    "repair_loss": ("paper", "paper_plus_c", "official"),
    "disc_padding": ("symmetric", "tf_same", "centred"),
    "ae_init": ("default", "official"),
    "decoder_upsampling": ("half_pixel", "tf_legacy"),
    "stl10_split": ("unlabeled", "train", "test", "train+unlabeled"),
}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` (from YAML or a ``--set`` string) to the field's type, or raise ConfigError."""
    hint = annotation
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key '{name}' expects true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{name}' expects an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{name}' expects an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"config key '{name}' expects an integer, got {value!r}")
        return int(as_float)
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{name}' expects a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key '{name}' expects a string, got {value!r}")
        return str(value)
    if origin in (types.UnionType, typing.Union) and type(None) in typing.get_args(hint):  # X | None
        if value is None or str(value).strip().lower() in ("none", "null", ""):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(name, value, inner)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        item_types = typing.get_args(hint)
        if len(item_types) == 2 and item_types[1] is Ellipsis:  # tuple[X, ...]: any number of X
            if not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(f"config key '{name}' expects comma-separated values, got {value!r}")
            return tuple(_coerce(name, v, item_types[0]) for v in value)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            raise ConfigError(f"config key '{name}' expects {len(item_types)} comma-separated values, got {value!r}")
        return tuple(_coerce(name, v, t) for v, t in zip(value, item_types))
    raise ConfigError(f"config key '{name}' has an unsupported type {hint}")


def _validate(cfg: CommonConfig) -> None:
    for key, allowed in _CHOICES.items():
        if hasattr(cfg, key) and getattr(cfg, key) not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(allowed)}; got {getattr(cfg, key)!r}")
    if cfg.image_size < 32 or cfg.image_size % 16:
        raise ConfigError(
            f"image_size must be a multiple of 16 and at least 32 (got {cfg.image_size}): the encoder halves the "
            "image four times and its grid must line up with the discriminator's conv5 grid"
        )
    positive = ["batch_size", "lr", "log_every", "image_every", "checkpoint_every"]
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"config key '{key}' must be positive, got {getattr(cfg, key)}")
    if cfg.steps < 0 or cfg.epochs < 0 or (cfg.steps == 0 and cfg.epochs == 0):
        raise ConfigError("set a positive number of steps or epochs (steps takes precedence when both are set)")
    if not 0.0 < cfg.crop_scale_min <= 1.0:
        raise ConfigError(f"crop_scale_min must be in (0, 1], got {cfg.crop_scale_min}")
    if not 0.0 < cfg.lr_decay_fraction <= 1.0:
        raise ConfigError(f"lr_decay_fraction must be in (0, 1], got {cfg.lr_decay_fraction}")
    if cfg.num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {cfg.num_workers}")
    if isinstance(cfg, MonitorConfig):
        unknown = [layer for layer in cfg.knn_layers if layer not in ("conv1", "conv2", "conv3", "conv4", "conv5")]
        if unknown:
            raise ConfigError(f"knn_layers must be some of conv1..conv5, got {', '.join(unknown)}")
        if cfg.knn_every < 1:
            raise ConfigError(f"knn_every must be >= 1, got {cfg.knn_every}")
    if isinstance(cfg, RotNetConfig):
        if cfg.rotnet_hidden < 1:
            raise ConfigError(f"rotnet_hidden must be >= 1, got {cfg.rotnet_hidden}")
        if cfg.max_seconds < 0:
            raise ConfigError(f"max_seconds must be >= 0 (0: no time budget), got {cfg.max_seconds}")
    if isinstance(cfg, SpotConfig):
        if not 0.0 <= cfg.drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {cfg.drop_rate}")
        if cfg.passes not in (1, 2):
            raise ConfigError(f"passes must be 1 or 2, got {cfg.passes}")
        if cfg.repair_every < 1:
            raise ConfigError(f"repair_every must be >= 1, got {cfg.repair_every}")
        if cfg.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {cfg.warmup_steps}")
        if cfg.mask_loss_weight < 0 or cfg.gan_weight < 0 or cfg.recon_weight < 0:
            raise ConfigError("loss weights must be >= 0")
    if isinstance(cfg, (AEConfig, SpotConfig)) and cfg.bias_grad_factor <= 0:
        raise ConfigError(f"bias_grad_factor must be positive, got {cfg.bias_grad_factor}")


def config_class(command: str) -> type[CommonConfig]:
    return _CONFIG_CLASSES[command]


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Keys that earlier versions wrote into config.yaml, each read as the key that replaced it with the value it meant
# then, so that old run directories, YAML files and commands keep their meaning. They are never written.
_RENAMED: dict[str, tuple[str, dict[bool, str]]] = {
    # official_loss_quirk=true added C's loss to the paper's R loss; that is not the official total (FIDELITY.md D2)
    "official_loss_quirk": ("repair_loss", {True: "paper_plus_c", False: "paper"}),
    "repair_zero_init": ("repair_init", {True: "identity", False: "default"}),
}
_warned_renames: set[str] = set()


def _renamed(key: str, value: Any, overrides: dict[str, Any], source: str) -> tuple[str, str]:
    """The current key and value for the old ``key``; an error when the same source also sets the new key to
    something else."""
    new_key, meanings = _RENAMED[key]
    new_value = meanings[_coerce(key, value, bool)]
    given = {k.replace("-", "_"): v for k, v in overrides.items()}.get(new_key)
    if given is not None and str(given) != new_value:
        raise ConfigError(f"{source} sets both '{key}: {value}' (which means {new_key}={new_value}) and "
                          f"'{new_key}: {given}': keep only {new_key}")
    if key not in _warned_renames:
        _warned_renames.add(key)
        logging.getLogger("spotart").warning("config key '%s' (in %s) is read as %s=%s; it is renamed, see README "
                                             "'Fidelity to the official code'", key, source, new_key, new_value)
    return new_key, new_value


def apply_overrides(cfg: CommonConfig, overrides: dict[str, Any], source: str) -> CommonConfig:
    """Set ``overrides`` on ``cfg`` after type-checking each against the dataclass; unknown keys are errors."""
    hints = _type_hints(type(cfg))
    known = {f.name for f in fields(cfg)}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key in _RENAMED and _RENAMED[key][0] in known:
            key, value = _renamed(key, value, overrides, source)
        if key not in known:
            close = [k for k in known if k.startswith(key[:4])]
            hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
            raise ConfigError(f"unknown config key '{key}' in {source}{hint}")
        setattr(cfg, key, _coerce(key, value, hints[key]))
    return cfg


def parse_set_args(pairs: list[str]) -> dict[str, str]:
    """Turn ``["lr=1e-4", "flip=false"]`` into a dict; each entry must contain '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


def build_config(
    command: str,
    yaml_path: str | None = None,
    set_pairs: list[str] | None = None,
    cli_values: dict[str, Any] | None = None,
) -> CommonConfig:
    """Defaults, then the YAML file, then explicit CLI flags, then ``--set`` overrides (last wins)."""
    cfg = config_class(command)()
    if yaml_path:
        apply_overrides(cfg, load_yaml(yaml_path), source=str(yaml_path))
    if cli_values:
        apply_overrides(cfg, {k: v for k, v in cli_values.items() if v is not None}, source="command line")
    if set_pairs:
        apply_overrides(cfg, parse_set_args(set_pairs), source="--set")
    _validate(cfg)
    return cfg


def config_to_dict(cfg: CommonConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def config_from_dict(command: str, values: dict[str, Any]) -> CommonConfig:
    cfg = config_class(command)()
    apply_overrides(cfg, values, source="saved config")
    _validate(cfg)
    return cfg


__all__ = [
    "AEConfig",
    "MonitorConfig",
    "CommonConfig",
    "ConfigError",
    "ROTNET_SHARED_KEYS",
    "RotNetConfig",
    "SpotConfig",
    "build_config",
    "config_from_dict",
    "config_to_dict",
]
