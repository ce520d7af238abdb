"""Datasets of the four modalities: users' data in its real on-disk formats, and built-in
offline datasets generated from packages (Fashion-MNIST, espeak-ng words, trimesh shapes,
moving digits). Every dataset returns ``(input, target)`` with a fixed input shape
(``sample_shape``) and exposes ``classes``, ``num_classes``, ``multi_label`` and ``describe()``.

``m2pt.data.augment`` holds the base methods' train and test pipelines (MAE, VideoMAE, AudioMAE,
Point-MAE); ``m2pt.data.seeding`` makes their random choices a function of a key (seed, epoch,
item) so that results do not depend on the number of loader workers.
"""

import importlib
from typing import Any

# Imported on first use (PEP 562): the readers need the packages of the ``data`` extra (PyAV,
# trimesh, ...), which m2pt's core does not; ``from m2pt.data import X`` names the extra to
# install when one is missing.
_EXPORTS = {
    "AudioListDataset": "m2pt.data.audio",
    "BadFileTracker": "m2pt.data.robust",
    "DatasetError": "m2pt.data.errors",
    "FashionMNISTDataset": "m2pt.data.builtin.fashion_mnist",
    "ImageFolderDataset": "m2pt.data.images",
    "LabelledDataset": "m2pt.data.base",
    "MeshFolderDataset": "m2pt.data.meshes",
    "MissingSystemPackageError": "m2pt.data.errors",
    "ModelNet40Dataset": "m2pt.data.points",
    "MovingDigitsDataset": "m2pt.data.builtin.moving_digits",
    "ScanObjectNNDataset": "m2pt.data.points",
    "ShapeNetPartDataset": "m2pt.data.shapenet_part",
    "ShapesDataset": "m2pt.data.builtin.shapes",
    "SpokenWordsDataset": "m2pt.data.builtin.spoken_words",
    "TooManyBadFilesError": "m2pt.data.errors",
    "VideoListDataset": "m2pt.data.video",
    "build_dataset": "m2pt.data.factory",
    "builtin_dataset": "m2pt.data.factory",
    "data_root": "m2pt.data.cache",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'm2pt.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AudioListDataset", "BadFileTracker", "DatasetError", "FashionMNISTDataset",
    "ImageFolderDataset", "LabelledDataset", "MeshFolderDataset", "MissingSystemPackageError",
    "ModelNet40Dataset", "MovingDigitsDataset", "ScanObjectNNDataset", "ShapeNetPartDataset",
    "ShapesDataset", "SpokenWordsDataset", "TooManyBadFilesError", "VideoListDataset",
    "build_dataset", "builtin_dataset", "data_root",
]
