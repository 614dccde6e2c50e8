"""The frozen networks that evaluation reads features from, loaded from any spotart checkpoint.

- a stage-2 (``train-spot``), ``train-supervised`` or ``train-rotnet`` checkpoint: the discriminator's trunk, layers
  conv1..conv5;
- a stage-1 (``train-ae``) checkpoint: the autoencoder's encoder, layers enc1..enc5 (a baseline);
- ``init="random"``: a freshly initialised discriminator trunk (the random-init baseline), with the init scheme and
  padding of ``random_config`` (train-spot keys ``disc_init``, ``disc_padding``; default PyTorch's, symmetric).

``fingerprint`` hashes every parameter and buffer (BatchNorm statistics included), so that a probe can prove the
network it evaluated is the one it loaded and that nothing changed it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import LAYERS, AutoEncoder, Trunk
from ..models.discriminator import architecture_options
from ..train.checkpoints import CheckpointError, load_checkpoint
from ..train.trunks import TRUNK_STAGES, trunk_from_payload
from .errors import EvaluationError, TrunkChangedError

log = logging.getLogger("spotart")

ENCODER_LAYERS = ("enc1", "enc2", "enc3", "enc4", "enc5")
DISCRIMINATOR_STAGES = TRUNK_STAGES  # spot, supervised, rotnet: checkpoints holding a trained trunk
MIN_IMAGE_SIZE = 32


class Backbone(nn.Module):
    """A frozen feature extractor: ``forward(images in [-1, 1])`` -> {layer name: (B, C, H, W)}, shallow to deep."""

    def __init__(self, net: nn.Module, layers: tuple[str, ...], image_size: int, kind: str, origin: str) -> None:
        super().__init__()
        self.net = net
        self.layers = layers
        self.image_size = image_size
        self.kind = kind  # spot | supervised | rotnet | autoencoder | random
        self.origin = origin  # the checkpoint path, or "random init (seed N)"

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(self.net, Trunk):
            return self.net.forward_features(images)
        return dict(zip(self.layers, self.net.forward_features(images)))

    def fingerprint(self) -> str:
        return fingerprint(self.net)


def fingerprint(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``module`` (names, dtypes, shapes, values; layout-independent)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_unchanged(before: str, module: nn.Module, what: str) -> str:
    """Raise ``TrunkChangedError`` unless ``module`` still hashes to ``before``; return the hash."""
    after = fingerprint(module)
    if after != before:
        raise TrunkChangedError(
            f"the frozen {what} changed during evaluation (sha256 {before[:12]} -> {after[:12]}): its weights or "
            "BatchNorm statistics were modified, so the reported accuracies do not describe the loaded network"
        )
    return after


def load_backbone(checkpoint: str | Path | None, init: str = "checkpoint", image_size: int | None = None,
                  seed: int = 0, random_config: Mapping[str, Any] | None = None) -> Backbone:
    """The network to evaluate, in eval mode with gradients off. ``image_size`` defaults to the trained size."""
    if image_size is not None and image_size < MIN_IMAGE_SIZE:
        raise EvaluationError(f"image size {image_size} is too small: use at least {MIN_IMAGE_SIZE}")
    if init == "random":
        if checkpoint:
            raise EvaluationError("--init random evaluates a freshly initialised discriminator: drop --checkpoint")
        size = image_size or 96
        scheme = dict(random_config or {})
        disc_init, padding = scheme.get("disc_init", "default"), architecture_options(scheme)["padding"]
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(seed)
            # the trunk a Discriminator(size) starts with after the same seed (it is built and initialised first;
            # train-spot draws C from the seed alone), without building the 37M-parameter class head only to
            # throw it away
            trunk = Trunk(padding, init=disc_init)
        described = "" if not random_config else f", disc_init {disc_init}, padding {padding}"
        return _frozen(Backbone(trunk, LAYERS, size, "random", f"random init (seed {seed}{described})"))
    if init != "checkpoint":
        raise EvaluationError(f"unknown init {init!r}: use 'checkpoint' or 'random'")
    if not checkpoint:
        raise EvaluationError("pass --checkpoint CKPT (a train-spot, train-supervised, train-rotnet or train-ae "
                              "checkpoint), or --init random")
    payload = load_checkpoint(checkpoint)
    stage = payload["stage"]
    trained_size = int(payload["config"]["image_size"])
    size = image_size or trained_size
    if size != trained_size:
        log.info("%s was trained at %d px; evaluating at %d px", checkpoint, trained_size, size)
    try:
        if stage in DISCRIMINATOR_STAGES:
            backbone = Backbone(trunk_from_payload(payload, str(checkpoint)), LAYERS, size, stage, str(checkpoint))
        elif stage == "autoencoder":
            model = AutoEncoder()
            model.load_state_dict(payload["model"])
            backbone = Backbone(model.encoder, ENCODER_LAYERS, size, stage, str(checkpoint))
        else:
            raise CheckpointError(
                f"{checkpoint} is a {stage!r} checkpoint; evaluation needs a train-spot, train-supervised, "
                "train-rotnet or train-ae checkpoint"
            )
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{checkpoint}: its weights do not fit the network ({type(err).__name__}: "
                              f"{str(err).splitlines()[0]})") from None
    return _frozen(backbone)


def _frozen(backbone: Backbone) -> Backbone:
    return backbone.eval().requires_grad_(False)
