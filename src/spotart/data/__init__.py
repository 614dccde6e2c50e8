"""Image sources, the paper's augmentation, and a loader that skips unreadable files instead of crashing.

Sources: any folder of images (class folders give labels, a flat folder gives none), tar shards written by
``spotart pack`` or any WebDataset writer, STL-10 through torchvision in its own on-disk format, CIFAR-10 through
torchvision or as class folders.

Augmentation is a pure function of (seed, epoch, index): the sampler hands every index its own seed, so
the images a run sees do not depend on the number of workers and are the same after ``--resume``.

The modules, each importing only those listed before it (``tests/test_import_graph.py`` checks that no module of
spotart takes part in an import cycle):

- ``errors``: ``DataError``, a path or dataset that cannot be used;
- ``images``: what every source shares: the file types, ``MIN_SIDE``, the ``ImageSource`` protocol, ``to_rgb``;
- ``shards``: reading tar shards (``ShardSource``, ``open_shards``, ``is_shard_data``);
- ``sources``: folders, torchvision's STL-10 and CIFAR-10, and ``open_source``, which picks one from ``--data``;
- ``pack``: ``spotart pack``, writing a folder as shards;
- ``augment``: the CPU augmentation (``Augment``) and the test-time view (``CenterCrop``);
- ``augment_device``: the same augmentation as batched operations on the device (``--set gpu_augment=true``);
- ``loader``: the dataset, the seeded sampler and the training loader;
- ``bundled_photos``: scikit-image's bundled photographs written as a folder (the demo's data).

This package re-exports the names the rest of spotart uses (``from spotart.data import FolderSource``); modules
inside it import their siblings directly, never through this file.
"""

from .augment import Augment, CenterCrop
from .errors import DataError
from .images import IMAGE_EXTENSIONS, MIN_SIDE, ImageSource, to_rgb
from .loader import ImageDataset, SeededSampler, collate_skipping, make_loader, training_loader
from .sources import FolderSource, TorchvisionSource, open_source

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_SIDE",
    "Augment",
    "CenterCrop",
    "DataError",
    "FolderSource",
    "ImageDataset",
    "ImageSource",
    "SeededSampler",
    "TorchvisionSource",
    "collate_skipping",
    "make_loader",
    "open_source",
    "to_rgb",
    "training_loader",
]
