"""spotart: Learning to Spot Artifacts (Jenni & Favaro, CVPR 2018) in PyTorch."""

__version__ = "0.1.0"
