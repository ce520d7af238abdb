"""One entry point per use: the built-in dataset of a modality, or a user's data on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from torch.utils.data import Dataset

from m2pt.data.audio import AudioListDataset
from m2pt.data.builtin.fashion_mnist import FashionMNISTDataset
from m2pt.data.builtin.moving_digits import MovingDigitsDataset
from m2pt.data.builtin.shapes import ShapesDataset
from m2pt.data.builtin.spoken_words import SpokenWordsDataset
from m2pt.data.errors import DatasetError
from m2pt.data.images import ImageFolderDataset
from m2pt.data.meshes import MeshFolderDataset
from m2pt.data.options import check_options
from m2pt.data.points import ModelNet40Dataset, ScanObjectNNDataset
from m2pt.data.shapenet_part import ShapeNetPartDataset
from m2pt.data.video import VideoListDataset

PathLike = Union[str, os.PathLike]

MODALITIES = ("image", "video", "point", "audio")
MODALITY_ALIASES = {"images": "image", "videos": "video", "points": "point",
                    "point_cloud": "point", "pointcloud": "point", "sound": "audio"}
BUILTIN_DATASETS = {"image": FashionMNISTDataset, "video": MovingDigitsDataset,
                    "point": ShapesDataset, "audio": SpokenWordsDataset}
# Other names users give their split files and folders.
SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "valid", "validation", "test", "eval"),
                 "test": ("test", "eval", "val", "valid", "validation")}
AUDIOSET_CLASS_INDEX = "class_labels_indices.csv"
# The classes a user's data on disk can go to, per modality (for checking options by name).
DATASET_CLASSES = {"image": [ImageFolderDataset], "video": [VideoListDataset], "audio": [AudioListDataset],
                   "point": [ModelNet40Dataset, ScanObjectNNDataset, ShapeNetPartDataset, MeshFolderDataset]}


def canonical_modality(modality: str) -> str:
    """Return ``"image"``, ``"video"``, ``"point"`` or ``"audio"`` for a modality name."""
    name = MODALITY_ALIASES.get(modality.lower(), modality.lower())
    if name not in MODALITIES:
        raise DatasetError(f"unknown modality '{modality}'; choose one of {MODALITIES}")
    return name


def builtin_dataset(modality: str, split: str = "train", root: PathLike | None = None,
                    seed: int = 0, **size_options: Any) -> Dataset:
    """Return the built-in offline dataset of a modality, generating it on first use.

    image: Fashion-MNIST subset; video: moving digits; point: primitive shapes; audio:
    espeak-ng spoken digits. Generated data is cached under ``root`` (default ``$M2PT_DATA``
    or ``~/.cache/m2pt/data``) and is the same for the same ``seed`` and options.

    Args:
        modality: ``"image"``, ``"video"``, ``"point"`` or ``"audio"``.
        split: ``"train"`` or ``"test"``.
        root: Cache folder.
        seed: Generation seed.
        **size_options: Passed to the dataset class (``train_size``, ``test_size``,
            ``image_size``, ``num_points``, ``clip_seconds``, ``transform``, ...).
    """
    dataset_class = BUILTIN_DATASETS[canonical_modality(modality)]
    return dataset_class(split=split, root=root, seed=seed, **size_options)


def _split_file(folder: Path, split: str, suffixes: tuple[str, ...], what: str) -> Path:
    for name in SPLIT_ALIASES.get(split, (split,)):
        for suffix in suffixes:
            for candidate in (folder / f"{name}{suffix}", folder / f"{name}_list{suffix}"):
                if candidate.is_file():
                    return candidate
    raise DatasetError(f"no {what} for split '{split}' in {folder} (looked for "
                       f"{split}{{{','.join(suffixes)}}} and aliases); pass the list file itself")


def _point_dataset(path: Path, split: str, options: dict[str, Any]) -> Dataset:
    if path.is_file() and path.suffix == ".h5":
        return ScanObjectNNDataset(path, split, **options)
    if (path / "synsetoffset2category.txt").is_file():
        return ShapeNetPartDataset(path, split, **options)
    if any(path.glob("*shape_names.txt")):
        return ModelNet40Dataset(path, split, **options)
    if any(path.rglob("*.h5")):
        return ScanObjectNNDataset(path, split, **options)
    return MeshFolderDataset(path, split, **options)


def build_dataset(modality: str, path_or_builtin: PathLike, split: str = "train",
                  **options: Any) -> Dataset:
    """Return a dataset for a user's data on disk, or the built-in one for ``"builtin"``.

    The format is detected from the path:

    * image: an ImageFolder tree (``<path>/<split>/<class>/*``);
    * video: a ``path label`` list file, or a folder with ``<split>.txt`` / ``.csv`` / ``.list``;
    * audio: a CSV/JSON list file, or a folder with ``<split>.csv`` / ``.json`` (an AudioSet
      ``class_labels_indices.csv`` next to it is used automatically);
    * point: a ShapeNetPart folder (``synsetoffset2category.txt``), a ModelNet folder
      (``*shape_names.txt``), a ScanObjectNN ``.h5`` file or folder, else a mesh folder.

    Args:
        modality: ``"image"``, ``"video"``, ``"point"`` or ``"audio"``.
        path_or_builtin: Dataset path, or ``"builtin"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        **options: Passed to the dataset class.

    Raises:
        DatasetError: When the path does not exist or its format is not recognised.
    """
    modality = canonical_modality(modality)
    if str(path_or_builtin) == "builtin":
        check_options(options, [BUILTIN_DATASETS[modality]], f"the built-in {modality} dataset",
                      accepted_extra=("root", "seed"))
        return builtin_dataset(modality, split, **options)
    path = Path(path_or_builtin).expanduser()
    if not path.exists():
        raise DatasetError(f"{modality} dataset path {path} does not exist; pass an existing "
                           "folder or list file, or 'builtin' for the generated dataset")
    check_options(options, DATASET_CLASSES[modality], f"{modality} data at {path}")
    if modality == "image":
        return ImageFolderDataset(path, split, **options)
    if modality == "video":
        list_file = path if path.is_file() else _split_file(path, split, (".txt", ".csv", ".list"),
                                                            "video list file")
        return VideoListDataset(list_file, **options)
    if modality == "audio":
        list_file = path if path.is_file() else _split_file(path, split, (".csv", ".json"),
                                                            "audio list file")
        class_index = list_file.parent / AUDIOSET_CLASS_INDEX
        if "class_index_csv" not in options and class_index.is_file():
            options["class_index_csv"] = class_index
        return AudioListDataset(list_file, **options)
    return _point_dataset(path, split, options)
