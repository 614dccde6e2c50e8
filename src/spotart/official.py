"""The authors' TensorFlow variables in spotart's networks (``spotart import-official``).

The official code (sjenni/LearningToSpotArtifacts) names its variables by scope: ``encoder/conv_0/weights``,
``generator/repair_3/conv1/BatchNorm/gamma``, ``discriminator/conv_2/conv_1/biases`` ... This module maps each onto
the state dict of spotart's ``AutoEncoder``, ``RepairNetwork`` and ``Discriminator`` and changes the layouts:

- kernels are TF's HWIO (height, width, in, out); PyTorch's are OIHW, the permutation (3, 2, 0, 1);
- the grouped convolutions of C (conv_2, conv_4, conv_5) are two TF variables ``conv_0`` / ``conv_1`` (the first
  and second half of the input and output channels): PyTorch holds them as one kernel, halves stacked on axis 0;
- fc_1 is officially a g x g VALID convolution over conv_5 (NHWC, so flattened in (h, w, c) order); spotart's is an
  ``nn.Linear`` over conv_5 flattened as NCHW, (c, h, w): the kernel is permuted accordingly;
- BatchNorm's ``gamma`` / ``beta`` / ``moving_mean`` / ``moving_variance`` are PyTorch's ``weight`` / ``bias`` /
  ``running_mean`` / ``running_var`` (C's BatchNorms have no gamma: ``BatchNormNoScale``).

A file of arrays keyed by these names is what ``spotart import-official`` reads; docs/fidelity.md has the few lines
of TensorFlow that write one from an official checkpoint. spotart itself never imports TensorFlow. The optimiser's
and the moving average's bookkeeping (``global_step``, Adam's slots and powers, ``ExponentialMovingAverage``) is
recognised and left out; any other name, a missing one or a wrong shape is an ``OfficialWeightsError`` of one line.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PARTS = ("autoencoder", "repair", "discriminator")
# Official bookkeeping that holds no weight of the networks: skipped, never an error.
BOOKKEEPING_NAMES = frozenset({"global_step", "beta1_power", "beta2_power"})
BOOKKEEPING_SUFFIXES = ("/Adam", "/Adam_1", "/ExponentialMovingAverage")
BF16_SUFFIX = "#bf16bits"  # the fixtures' storage of a bfloat16-rounded kernel: its float32's upper 16 bits

_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_ENCODER_LAYERS = 5
_DECODER_SCOPES = ("deconv_0", "deconv_1", "deconv_2", "deconv_4")  # D1..D4 (the official code skips deconv_3)
_REPAIR_BLOCKS = 5


class OfficialWeightsError(ValueError):
    """An official weights file that does not fit spotart's networks: the message names the variable."""


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def _same(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array)


def fc_kernel_to_linear(kernel: np.ndarray) -> np.ndarray:
    """fc_1 / fc_2: an (h, w, in, out) VALID convolution -> ``nn.Linear`` weight (out, in * h * w) whose input is
    the NCHW feature map flattened as (c, h, w)."""
    height, width, channels, out = kernel.shape
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1).reshape(out, channels * height * width))


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def linear_to_fc_kernel(weight: np.ndarray, channels: int) -> np.ndarray:
    """The inverse of ``fc_kernel_to_linear``: (out, channels * g * g) -> (g, g, channels, out)."""
    out, inputs = weight.shape
    side = int(round((inputs // channels) ** 0.5))
    return np.ascontiguousarray(weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0))


@dataclass(frozen=True)
class Entry:
    """One tensor of a spotart state dict and the official variable(s) it is made of (several: concatenated on
    axis 0 after ``convert``, the two groups of a grouped convolution); ``unconvert`` goes back."""

    part: str
    key: str
    sources: tuple[str, ...]
    convert: Callable[[np.ndarray], np.ndarray] = _same
    unconvert: Callable[[np.ndarray], np.ndarray] = _same


def _kernel(part: str, key: str, name: str) -> Entry:
    """A convolution kernel: TF's HWIO variable ``name`` as PyTorch's OIHW ``key``."""
    return Entry(part, key, (name,), hwio_to_oihw, oihw_to_hwio)


def _bn_entries(part: str, prefix: str, scope: str, scale: bool = True) -> list[Entry]:
    names = ("gamma", "beta", "moving_mean", "moving_variance") if scale else ("beta", "moving_mean", "moving_variance")
    return [Entry(part, f"{prefix}.{_BN_NAMES[name]}", (f"{scope}/BatchNorm/{name}",)) for name in names]


def autoencoder_entries() -> list[Entry]:
    entries = []
    for i in range(_ENCODER_LAYERS):
        scope = f"encoder/conv_{i}"
        entries.append(_kernel("autoencoder", f"encoder.layers.{i}.0.weight", f"{scope}/weights"))
        entries += _bn_entries("autoencoder", f"encoder.layers.{i}.1", scope)
    for i, name in enumerate(_DECODER_SCOPES):
        scope = f"decoder/{name}"
        entries.append(_kernel("autoencoder", f"decoder.stages.{i}.block.0.weight", f"{scope}/weights"))
        entries += _bn_entries("autoencoder", f"decoder.stages.{i}.block.1", scope)
    entries.append(_kernel("autoencoder", "decoder.to_rgb.weight", "decoder/deconv_5/weights"))
    entries.append(Entry("autoencoder", "decoder.to_rgb.bias", ("decoder/deconv_5/biases",)))
    return entries


def repair_entries() -> list[Entry]:
    entries = []
    for i in range(_REPAIR_BLOCKS):
        scope = f"generator/repair_{i}"
        entries.append(_kernel("repair", f"blocks.{i}.body.0.weight", f"{scope}/conv1/weights"))
        entries += _bn_entries("repair", f"blocks.{i}.body.1", f"{scope}/conv1")
        entries.append(_kernel("repair", f"blocks.{i}.body.3.weight", f"{scope}/conv2/weights"))
        entries.append(Entry("repair", f"blocks.{i}.body.3.bias", (f"{scope}/conv2/biases",)))
    return entries


def discriminator_entries() -> list[Entry]:
    def grouped(name: str, leaf: str) -> tuple[str, ...]:
        return (f"discriminator/{name}/conv_0/{leaf}", f"discriminator/{name}/conv_1/{leaf}")

    part = "discriminator"
    entries = [
        Entry(part, "trunk.conv1.weight", ("discriminator/conv_1/weights",), hwio_to_oihw, oihw_to_hwio),
        Entry(part, "trunk.conv1.bias", ("discriminator/conv_1/biases",)),
        Entry(part, "trunk.conv2.weight", grouped("conv_2", "weights"), hwio_to_oihw, oihw_to_hwio),
        Entry(part, "trunk.conv2.bias", grouped("conv_2", "biases")),
        Entry(part, "trunk.conv3.weight", ("discriminator/conv_3/weights",), hwio_to_oihw, oihw_to_hwio),
        Entry(part, "trunk.conv3.bias", ("discriminator/conv_3/biases",)),
        Entry(part, "trunk.conv4.weight", grouped("conv_4", "weights"), hwio_to_oihw, oihw_to_hwio),
        Entry(part, "trunk.conv4.bias", grouped("conv_4", "biases")),
        Entry(part, "trunk.conv5.weight", grouped("conv_5", "weights"), hwio_to_oihw, oihw_to_hwio),
        # conv_5's two BatchNorms are per channel, so together they are one over the 256 channels
        Entry(part, "trunk.bn5.bias", grouped("conv_5", "BatchNorm/beta")),
        Entry(part, "trunk.bn5.norm.running_mean", grouped("conv_5", "BatchNorm/moving_mean")),
        Entry(part, "trunk.bn5.norm.running_var", grouped("conv_5", "BatchNorm/moving_variance")),
        Entry(part, "mask_head.weight", ("discriminator/drop_pred/weights",), hwio_to_oihw, oihw_to_hwio),
        Entry(part, "mask_head.bias", ("discriminator/drop_pred/biases",)),
        Entry(part, "class_head.1.weight", ("discriminator/fc_1/weights",), fc_kernel_to_linear,
              lambda weight: linear_to_fc_kernel(weight, 256)),
        Entry(part, "class_head.2.bias", ("discriminator/fc_1/BatchNorm/beta",)),
        Entry(part, "class_head.2.norm.running_mean", ("discriminator/fc_1/BatchNorm/moving_mean",)),
        Entry(part, "class_head.2.norm.running_var", ("discriminator/fc_1/BatchNorm/moving_variance",)),
        Entry(part, "class_head.5.weight", ("discriminator/fc_2/weights",), fc_kernel_to_linear,
              lambda weight: linear_to_fc_kernel(weight, weight.shape[1])),
        Entry(part, "class_head.5.bias", ("discriminator/fc_2/biases",)),
    ]
    return entries


ENTRIES: tuple[Entry, ...] = tuple(autoencoder_entries() + repair_entries() + discriminator_entries())


def official_names(part: str | None = None) -> list[str]:
    """Every official variable name spotart reads (of one part, or all)."""
    return [name for entry in ENTRIES if part is None or entry.part == part for name in entry.sources]


def is_bookkeeping(name: str) -> bool:
    return name in BOOKKEEPING_NAMES or name.endswith(BOOKKEEPING_SUFFIXES)


def decode_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plain float32 arrays by official name; ``name#bf16bits`` (the fixtures' storage) becomes ``name``."""
    decoded = {}
    for key, value in arrays.items():
        if key.endswith(BF16_SUFFIX):
            bits = np.asarray(value)
            if bits.dtype != np.uint16:
                raise OfficialWeightsError(f"{key}: expected uint16 bfloat16 bits, got {bits.dtype}")
            decoded[key[: -len(BF16_SUFFIX)]] = (bits.astype(np.uint32) << 16).view(np.float32)
        elif "#" in key:
            raise OfficialWeightsError(f"{key}: a partial array (slice or sums of a variable), not a variable's value")
        else:
            decoded[key] = np.asarray(value)
    return decoded


def read_official_file(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file written from an official checkpoint (names as the official variables)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official weights file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise OfficialWeightsError(f"{path} is not a readable .npz file of arrays ({err})") from None
    return decode_arrays(arrays)


def convert_official(arrays: Mapping[str, np.ndarray], parts: tuple[str, ...] | None = None
                     ) -> dict[str, dict[str, torch.Tensor]]:
    """Official arrays -> ``{part: state dict}`` for the parts the arrays hold (or exactly ``parts``).

    A part is present when any of its variables is; then every one of its variables must be. A name that is neither
    a variable of the three networks nor optimiser bookkeeping is an error."""
    arrays = decode_arrays(arrays)
    known = {name for entry in ENTRIES for name in entry.sources}
    unexpected = sorted(name for name in arrays if name not in known and not is_bookkeeping(name))
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise OfficialWeightsError(f"unexpected official variable {unexpected[0]!r}{more}: not a variable of the "
                                   "authors' autoencoder, repair network or discriminator")
    present = tuple(p for p in PARTS if any(name in arrays for name in official_names(p)))
    wanted = present if parts is None else parts
    if not wanted:
        raise OfficialWeightsError("no official variable of the autoencoder, repair network or discriminator found")
    states: dict[str, dict[str, torch.Tensor]] = {}
    for entry in ENTRIES:
        if entry.part not in wanted:
            continue
        missing = [name for name in entry.sources if name not in arrays]
        if missing:
            raise OfficialWeightsError(f"missing official variable {missing[0]!r} of the {entry.part}")
        pieces = [entry.convert(np.asarray(arrays[name], dtype=np.float32)) for name in entry.sources]
        value = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
        states.setdefault(entry.part, {})[entry.key] = torch.from_numpy(np.ascontiguousarray(value))
    return states


def discriminator_image_size(arrays: Mapping[str, np.ndarray]) -> int:
    """The image size C was built for: fc_1's kernel covers conv5's g x g grid, one cell per 16 px."""
    kernel = decode_arrays({k: v for k, v in arrays.items() if k.startswith("discriminator/fc_1/weights")})
    shape = kernel["discriminator/fc_1/weights"].shape
    if len(shape) != 4 or shape[0] != shape[1]:
        raise OfficialWeightsError(f"discriminator/fc_1/weights has shape {shape}: expected (g, g, 256, 4096)")
    return 16 * shape[0]


def export_official(states: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """spotart state dicts (``{part: state dict}``, e.g. parameters, their gradients or BatchNorm statistics) ->
    float32 arrays under the official names, in TF's layouts: the inverse of ``convert_official``. Entries whose
    tensor is not in ``states`` are left out."""
    arrays = {}
    for entry in ENTRIES:
        state = states.get(entry.part, {})
        if entry.key not in state or state[entry.key] is None:
            continue
        value = state[entry.key].detach().float().cpu().numpy()
        pieces = np.split(value, len(entry.sources), axis=0) if len(entry.sources) > 1 else [value]
        for name, piece in zip(entry.sources, pieces, strict=True):
            arrays[name] = entry.unconvert(piece)
    return arrays


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Copy ``state`` into ``module``: every parameter and BatchNorm statistic must be given, with its shape."""
    own = module.state_dict()
    for key, value in state.items():
        if key not in own:
            raise OfficialWeightsError(f"{what} has no tensor {key!r} (is it built as the official one?)")
        if tuple(own[key].shape) != tuple(value.shape):
            raise OfficialWeightsError(f"{what}.{key}: the official value has shape {tuple(value.shape)} after the "
                                       f"layout change, spotart's is {tuple(own[key].shape)}")
    left = [key for key in own if key not in state and not key.endswith("num_batches_tracked")]
    if left:
        raise OfficialWeightsError(f"{what}.{left[0]} has no official value (is it built as the official one?)")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))


# The settings under which spotart's networks compute what the official ones do (configs/official_stl10*.yaml); an
# imported checkpoint's config carries them, so that every reader rebuilds the networks as the authors built them.
OFFICIAL_AE_KEYS = {"ae_init": "official", "decoder_upsampling": "tf_legacy", "decay_output_bias": True,
                    "tf_adam_epsilon": True, "bias_grad_factor": 2.0, "weight_decay": 2.5e-5, "beta1": 0.5,
                    "precision": "fp32"}
OFFICIAL_SPOT_KEYS = {"disc_init": "official", "disc_padding": "tf_same", "fc1_bn_scale": False, "repair": "masked",
                      "repair_init": "official", "repair_loss": "official", "drop_rate": 0.7, "passes": 1,
                      "tf_adam_epsilon": True, "bias_grad_factor": 2.0, "weight_decay": 2.5e-5, "beta1": 0.5,
                      "precision": "fp32"}


def import_official(source: str | Path, out: str | Path, image_size: int | None = None) -> tuple[Path, str]:
    """Write a spotart checkpoint from an official weights file; returns its path and its stage.

    Encoder and decoder alone give a stage-1 (``autoencoder``) checkpoint, for ``train-spot --autoencoder``; with the
    discriminator (and optionally R and the autoencoder) a stage-2 (``spot``) checkpoint that probe, finetune, export,
    spot and the VOC commands read. Neither holds optimiser states: they start runs and evaluations, not resumes."""
    from .config import AEConfig, SpotConfig, apply_overrides, config_to_dict
    from .models import AutoEncoder, Discriminator
    from .models.repair import RepairNetwork
    from .train.checkpoints import CHECKPOINT_FORMAT, save_checkpoint

    arrays = read_official_file(source)
    states = convert_official(arrays)
    step = int(arrays["global_step"]) if "global_step" in arrays else 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    origin = {"official_weights": str(source), "official_global_step": step}
    autoencoder = None
    if "autoencoder" in states:
        autoencoder = AutoEncoder(upsampling="tf_legacy")
        load_into(autoencoder, states["autoencoder"], "autoencoder")
    if "discriminator" not in states:
        if autoencoder is None:
            raise OfficialWeightsError(f"{source} holds R's variables but neither the discriminator nor the "
                                       "autoencoder: nothing spotart can evaluate or train from")
        cfg = apply_overrides(AEConfig(), {**OFFICIAL_AE_KEYS, "image_size": image_size or 96}, "import-official")
        payload = {"stage": "autoencoder", "format": CHECKPOINT_FORMAT, "step": step, "config": config_to_dict(cfg),
                   "model": autoencoder.state_dict(), "resumable": False, **origin}
        save_checkpoint(out, payload)
        return out, "autoencoder"
    built_for = discriminator_image_size(arrays)
    if image_size is not None and image_size != built_for:
        raise OfficialWeightsError(f"the official discriminator was built for {built_for} px images (fc_1 covers "
                                   f"its {built_for // 16}x{built_for // 16} conv5 grid), not {image_size}")
    discriminator = Discriminator(built_for, padding="tf_same", fc1_bn_scale=False)
    load_into(discriminator, states["discriminator"], "discriminator")
    repair = None
    if "repair" in states:
        repair = RepairNetwork(masked=True, init="default")
        load_into(repair, states["repair"], "repair")
    cfg = apply_overrides(SpotConfig(), {**OFFICIAL_SPOT_KEYS, "image_size": built_for}, "import-official")
    payload = {"stage": "spot", "format": CHECKPOINT_FORMAT, "step": step, "config": config_to_dict(cfg),
               "discriminator": discriminator.state_dict(), "repair": None if repair is None else repair.state_dict(),
               "opt_c": None, "opt_r": None, "resumable": False, **origin}
    if autoencoder is not None:
        payload["autoencoder"] = autoencoder.state_dict()
        payload["autoencoder_upsampling"] = "tf_legacy"
    save_checkpoint(out, payload)
    return out, "spot"
