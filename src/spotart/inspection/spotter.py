"""``spotart spot``: the trained discriminator C used as an artifact detector on image files.

C has two heads: the class head says whether an image is "real" (in training: the frozen
autoencoder's reconstruction) or carries repaired damage; the mask head says, per cell of its conv5
grid (image size / 16), whether that cell was kept. Here the first gives the probability that the
image is real and the second, flipped, the probability that each cell carries artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageDraw, UnidentifiedImageError

from ..data import CenterCrop, to_rgb
from ..models import Discriminator
from .checkpoint import discriminator_from, load_spot_checkpoint
from .images import heat_overlay

HEATMAP_SUFFIX = "_artifacts.png"
MIN_HEATMAP_SIDE, MAX_HEATMAP_SIDE = 256, 768  # small inputs are enlarged so the cells can be seen


class SpotError(ValueError):
    """Some inputs could not be judged: each was named on its own line before this is raised."""


class UnreadableImage(ValueError):
    """One input that is missing or not an image; the message is the reason, for one line of output."""


@dataclass(frozen=True)
class Verdict:
    real_probability: float  # softmax of the class head, index 1 = real
    artifact_map: np.ndarray  # (g, g): 1 - sigmoid(mask logit), the probability that a cell was damaged


class ArtifactSpotter:
    """Judges centre squares of pictures at the resolution C was trained at."""

    def __init__(self, discriminator: Discriminator) -> None:
        self.discriminator = discriminator.eval()
        self.image_size = discriminator.image_size

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path) -> ArtifactSpotter:
        return cls(discriminator_from(load_spot_checkpoint(checkpoint)))

    @torch.no_grad()
    def judge(self, images: torch.Tensor) -> list[Verdict]:
        """``images`` (B, 3, S, S) in [-1, 1] at the checkpoint's size S."""
        out = self.discriminator(images.float())
        real = torch.softmax(out.class_logits.float(), dim=1)[:, 1]  # (B,)
        artifacts = 1.0 - torch.sigmoid(out.mask_logits.float())[:, 0]  # (B, g, g)
        return [Verdict(float(p), a.numpy()) for p, a in zip(real, artifacts)]

    def view(self, picture: Image.Image) -> tuple[Image.Image, torch.Tensor]:
        """The centre square C looks at, as a picture (full resolution) and as its input tensor (3, S, S)."""
        side = min(picture.size)
        square = TF.center_crop(picture, [side, side])
        return square, CenterCrop(self.image_size, fraction=1.0)(picture)


def read_picture(path: Path) -> Image.Image:
    """The file as an RGB picture, or UnreadableImage with a one-line reason."""
    if not path.exists():
        raise UnreadableImage("no such file")
    if path.is_dir():
        raise UnreadableImage("is a folder, not an image")
    try:
        with Image.open(path) as picture:
            picture.load()
            return to_rgb(picture)
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (no image format recognised)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # truncated, corrupt, absurdly large
        raise UnreadableImage(f"cannot be read ({type(err).__name__}: {err})") from None


def heatmap_path(image_path: Path, out_dir: Path | None) -> Path:
    """``<stem>_artifacts.png`` beside the input, or in ``out_dir``."""
    return (out_dir if out_dir is not None else image_path.parent) / f"{image_path.stem}{HEATMAP_SUFFIX}"


def save_heatmap(square: Image.Image, verdict: Verdict, path: Path) -> None:
    """The tinted square with faint lines between the cells, which are what C judges, not single pixels."""
    side = min(max(square.width, MIN_HEATMAP_SIDE), MAX_HEATMAP_SIDE)
    heat = heat_overlay(square.resize((side, side), Image.LANCZOS), verdict.artifact_map)
    draw = ImageDraw.Draw(heat, "RGBA")  # RGBA fills blend into the picture
    grid = verdict.artifact_map.shape[0]
    for k in range(1, grid):
        edge = k * side // grid
        draw.line([(edge, 0), (edge, side)], fill=(255, 255, 255, 90), width=1)
        draw.line([(0, edge), (side, edge)], fill=(255, 255, 255, 90), width=1)
    heat.save(path)


def spot_files(
    paths: Sequence[str | Path],
    spotter: ArtifactSpotter,
    out_dir: str | Path | None = None,
    report: Callable[[str], None] = print,
    complain: Callable[[str], None] = print,
) -> int:
    """Judge every file, write its heat map, and return how many could not be judged.

    A bad input costs one line from ``complain`` and the others go on: one broken file in a folder of
    hundreds should not hide the verdicts on the rest.
    """
    target = Path(out_dir).expanduser() if out_dir is not None else None
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in paths:
        path = Path(name).expanduser()
        try:
            square, tensor = spotter.view(read_picture(path))
            verdict = spotter.judge(tensor[None])[0]
            out = heatmap_path(path, target)
            try:
                save_heatmap(square, verdict, out)
            except OSError as err:
                raise UnreadableImage(f"cannot write the heat map {out} ({err.strerror or err})") from None
        except UnreadableImage as err:
            failures += 1
            complain(f"{name}: {err}")
            continue
        cells = verdict.artifact_map
        report(f"{name}: real {verdict.real_probability:.3f}  artifacts: max {cells.max():.2f}, "
               f"mean {cells.mean():.2f} over {cells.shape[0]}x{cells.shape[1]} cells -> {out}")
    return failures
