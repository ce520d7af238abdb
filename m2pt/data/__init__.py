"""Datasets of the four modalities: users' data in its real on-disk formats, and built-in
offline datasets generated from packages (Fashion-MNIST, espeak-ng words, trimesh shapes,
moving digits). Every dataset returns ``(input, target)`` with a fixed input shape
(``sample_shape``) and exposes ``classes``, ``num_classes``, ``multi_label`` and ``describe()``.

``m2pt.data.augment`` holds the base methods' train and test pipelines (MAE, VideoMAE, AudioMAE,
Point-MAE); ``m2pt.data.seeding`` makes their random choices a function of a key (seed, epoch,
item) so that results do not depend on the number of loader workers.
"""

from m2pt.data.audio import AudioListDataset
from m2pt.data.base import LabelledDataset
from m2pt.data.builtin.fashion_mnist import FashionMNISTDataset
from m2pt.data.builtin.moving_digits import MovingDigitsDataset
from m2pt.data.builtin.shapes import ShapesDataset
from m2pt.data.builtin.spoken_words import SpokenWordsDataset
from m2pt.data.cache import data_root
from m2pt.data.errors import DatasetError, MissingSystemPackageError, TooManyBadFilesError
from m2pt.data.factory import build_dataset, builtin_dataset
from m2pt.data.images import ImageFolderDataset
from m2pt.data.meshes import MeshFolderDataset
from m2pt.data.points import ModelNet40Dataset, ScanObjectNNDataset
from m2pt.data.robust import BadFileTracker
from m2pt.data.shapenet_part import ShapeNetPartDataset
from m2pt.data.video import VideoListDataset

__all__ = [
    "AudioListDataset", "BadFileTracker", "DatasetError", "FashionMNISTDataset",
    "ImageFolderDataset", "LabelledDataset", "MeshFolderDataset", "MissingSystemPackageError",
    "ModelNet40Dataset", "MovingDigitsDataset", "ScanObjectNNDataset", "ShapeNetPartDataset",
    "ShapesDataset", "SpokenWordsDataset", "TooManyBadFilesError", "VideoListDataset",
    "build_dataset", "builtin_dataset", "data_root",
]
