"""``spotart export``: the discriminator's conv1..conv5 trunk as a plain PyTorch module in safetensors.

It reads the trunk of any checkpoint that trained one: train-spot (the method), train-supervised, train-rotnet.

The trunk is what the method is for: downstream users want its weights without the training
machinery (optimiser states, the autoencoder, the repair network, the heads). safetensors holds
tensors only and cannot run code when loaded, so a backbone can be shared and opened safely; the
file's metadata records what is needed to use it (input size and range, layer names) and where it
came from (source checkpoint, step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..models import LAYERS, Trunk
from ..train.trunks import trunk_from_payload
from .checkpoint import load_trunk_checkpoint, resolve_checkpoint

BACKBONE_FORMAT = "spotart-backbone"
BACKBONE_FORMAT_VERSION = 1


class BackboneError(ValueError):
    """A file that is not a spotart backbone this version can load: the message says why."""


@dataclass(frozen=True)
class BackboneInfo:
    """What the metadata of an exported backbone says."""

    image_size: int  # the resolution the trunk was trained at (conv5 is image_size / 16 cells wide)
    layers: tuple[str, ...]  # the names ``forward_features`` returns
    source_checkpoint: str
    step: int
    padding: str = "symmetric"  # Trunk's padding mode (not in the weights); files from before it was recorded: this


def export_backbone(checkpoint: str | Path, out: str | Path) -> BackboneInfo:
    """Write the trunk of a train-spot, train-supervised or train-rotnet checkpoint (file or run directory) to
    ``out`` as safetensors."""
    from safetensors.torch import save_file

    source = resolve_checkpoint(checkpoint)
    payload = load_trunk_checkpoint(source)
    trunk = trunk_from_payload(payload, str(source))
    info = BackboneInfo(int(payload["config"]["image_size"]), LAYERS, str(source.resolve()), int(payload["step"]),
                        trunk.padding)
    # a fresh Trunk holds the weights: NCHW even when the run trained channels_last (safetensors refuses strides)
    tensors = {name: tensor.detach() for name, tensor in trunk.state_dict().items()}
    metadata = {
        "format": BACKBONE_FORMAT,
        "format_version": str(BACKBONE_FORMAT_VERSION),
        "architecture": "spotart.models.Trunk (AlexNet conv1..conv5, 'same' padding)",
        "input": "RGB images in [-1, 1], (B, 3, H, W)",
        "image_size": str(info.image_size),
        "layers": ",".join(info.layers),
        "source_checkpoint": info.source_checkpoint,
        "step": str(info.step),
        "padding": info.padding,  # where conv5's cells sit (spotart.models.discriminator)
        "trained_by": payload["stage"],  # spot | supervised | rotnet
    }
    out = Path(out).expanduser()
    if out.is_dir():
        raise BackboneError(f"--out {out} is a folder: give a file name such as {out / 'backbone.safetensors'}")
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, out)  # never leave a half-written backbone under the final name
    except OSError as err:
        raise BackboneError(f"cannot write {out}: {err.strerror or err}") from None
    return info


def read_backbone_info(path: str | Path) -> BackboneInfo:
    """The metadata of an exported backbone, after checking that it is one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise BackboneError(f"backbone file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise BackboneError(f"{path} is not a safetensors file ({err})") from None
    if metadata.get("format") != BACKBONE_FORMAT:
        raise BackboneError(f"{path} is a safetensors file but not a spotart backbone (export one with "
                            "`spotart export CKPT --out FILE`)")
    try:
        version = int(metadata["format_version"])
        info = BackboneInfo(int(metadata["image_size"]), tuple(metadata["layers"].split(",")),
                            metadata["source_checkpoint"], int(metadata["step"]), metadata.get("padding", "symmetric"))
    except (KeyError, ValueError) as err:
        raise BackboneError(f"{path} has incomplete backbone metadata ({type(err).__name__}: {err})") from None
    if version > BACKBONE_FORMAT_VERSION:
        raise BackboneError(f"{path} has backbone format {version}; this spotart reads up to "
                            f"{BACKBONE_FORMAT_VERSION}: update spotart")
    return info


def load_backbone(path: str | Path) -> Trunk:
    """The exported trunk, weights loaded, in eval mode: ``trunk.forward_features(images)`` gives conv1..conv5."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_backbone_info(path)
    trunk = Trunk(info.padding)
    try:
        trunk.load_state_dict(load_file(str(Path(path).expanduser()), device="cpu"))
    except (RuntimeError, SafetensorError) as err:  # missing, unexpected, wrongly shaped or truncated tensors
        raise BackboneError(f"{path} does not hold the tensors of a spotart trunk: {err}") from None
    return trunk.eval()


__all__ = ["BackboneError", "BackboneInfo", "export_backbone", "load_backbone", "read_backbone_info"]
