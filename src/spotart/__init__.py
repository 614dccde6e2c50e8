"""spotart: Learning to Spot Artifacts (Jenni & Favaro, CVPR 2018) in PyTorch."""

__version__ = "0.1.0"


def load_backbone(path):
    """The exported discriminator trunk (``spotart export``) as an eval-mode ``spotart.models.Trunk``."""
    from .inspection.export import load_backbone as _load_backbone

    return _load_backbone(path)
