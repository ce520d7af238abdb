"""Point-cloud classification data: ModelNet40 text files and ScanObjectNN HDF5 files.

Every cloud is reduced to ``num_points`` points (see :func:`select_points`), centred on its
centroid and scaled so the farthest point lies on the unit sphere; the output is a float
tensor ``[num_points, 3]``. Normals in the files are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch

from m2pt.data.base import LabelledDataset, class_names
from m2pt.data.errors import DatasetError
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker

PathLike = Union[str, os.PathLike]

SCANOBJECTNN_CLASSES = ["bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
                        "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet"]


def normalize_to_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre ``points [N, 3]`` on their centroid and scale the farthest one to radius 1."""
    centred = points - points.mean(axis=0, keepdims=True)
    radius = np.sqrt((centred ** 2).sum(axis=1)).max()
    return centred / radius if radius > 0 else centred


def select_points(count: int, num_points: int, mode: str, seed: int) -> np.ndarray:
    """Return indices of ``num_points`` of ``count`` points.

    Args:
        count: Points available.
        num_points: Points wanted.
        mode: ``"first"`` keeps the first points (files that are already uniformly resampled,
            like ModelNet40's); ``"random"`` draws a seeded random subset.
        seed: Seed of the random subset, and of the draws with replacement used when fewer
            than ``num_points`` points are available.
    """
    if count == 0:
        raise ValueError("the point cloud is empty")
    rng = np.random.default_rng(seed)
    if count < num_points:
        return np.concatenate([np.arange(count), rng.integers(0, count, num_points - count)])
    if mode == "first":
        return np.arange(num_points)
    return rng.choice(count, num_points, replace=False)


def read_modelnet_txt(path: PathLike) -> np.ndarray:
    """Read a ModelNet ``x,y,z,nx,ny,nz`` text file as a float32 array ``[N, >=3]``.

    Raises:
        ValueError: On a malformed line, or fewer than 3 columns.
    """
    data = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    if data.shape[1] < 3:
        raise ValueError(f"expected x,y,z[,nx,ny,nz] columns, got {data.shape[1]}")
    if not np.isfinite(data[:, :3]).all():
        raise ValueError("non-finite coordinates")
    return data


def _find_one(root: Path, pattern: str, what: str) -> Path:
    matches = sorted(root.glob(pattern))
    if len(matches) != 1:
        raise DatasetError(f"expected one {what} ({pattern}) in {root}, found "
                           f"{[m.name for m in matches] or 'none'}; the ModelNet layout is "
                           "<root>/modelnet40_shape_names.txt, modelnet40_train.txt, "
                           "modelnet40_test.txt and <class>/<class>_0001.txt")
    return matches[0]


class ModelNet40Dataset(LabelledDataset):
    """ModelNet40 (``modelnet40_normal_resampled``) or any folder in its layout.

    Returns ``(points [num_points, 3], label)``. The layout: ``*shape_names.txt`` (one class
    per line, label order), ``*_train.txt`` / ``*_test.txt`` (one shape id per line, e.g.
    ``night_stand_0001``; the class is the id without its last ``_NNNN``) and
    ``<class>/<shape id>.txt`` with comma-separated ``x,y,z,nx,ny,nz`` lines.

    Args:
        root: The dataset folder.
        split: ``"train"`` or ``"test"``.
        num_points: Points per cloud.
        point_selection: ``"first"`` (the files are uniformly resampled) or ``"random"``.
        seed: Seed of random point selection (combined with the item index).
        transform: Optional callable applied to the point tensor (augmentation).
        max_bad_fraction: Tolerated fraction of unreadable files.
    """

    def __init__(self, root: PathLike, split: str = "train", num_points: int = 1024,
                 point_selection: str = "first", seed: int = 0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"ModelNet folder {self.root} does not exist")
        names_file = _find_one(self.root, "*shape_names.txt", "class-name file")
        split_file = _find_one(self.root, f"*_{split}.txt", f"'{split}' split file")
        self.classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        lookup = {name: index for index, name in enumerate(self.classes)}
        shape_ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not shape_ids:
            raise DatasetError(f"split file {split_file} is empty")
        unknown = sorted({s.rsplit("_", 1)[0] for s in shape_ids} - set(lookup))
        if unknown:
            raise DatasetError(f"{split_file} names shapes of unknown classes {unknown[:5]}; "
                               f"add them to {names_file.name} or fix the split file")
        self.paths = [self.root / s.rsplit("_", 1)[0] / f"{s}.txt" for s in shape_ids]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise DatasetError(f"{split_file} lists {len(missing)} missing files, e.g. "
                               f"{missing[:3]}")
        self.targets = [lookup[s.rsplit("_", 1)[0]] for s in shape_ids]
        self.split, self.num_points, self.seed = split, num_points, seed
        if point_selection not in ("first", "random"):
            raise DatasetError(f"point_selection must be 'first' or 'random', got '{point_selection}'")
        self.point_selection = point_selection
        self.sample_shape = (num_points, 3)
        self.transform = transform
        self.tracker = BadFileTracker([str(p) for p in self.paths], max_bad_fraction,
                                      f"ModelNet40Dataset({self.root}, {split})")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        data = read_modelnet_txt(self.paths[index])
        keep = select_points(len(data), self.num_points, self.point_selection, self.seed * 1_000_003 + index)
        points = torch.from_numpy(normalize_to_unit_sphere(data[keep, :3]).astype(np.float32))
        if self.transform is not None:
            points = self.transform(points)
        return points, self.targets[index]

    def _repr_details(self) -> str:
        return f"split='{self.split}', root='{self.root}'"


def find_scanobjectnn_file(root: Path, split: str) -> Path:
    """Return the ScanObjectNN ``.h5`` file of ``split`` in ``root`` (or ``root`` itself)."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise DatasetError(f"ScanObjectNN path {root} does not exist")
    key = "training" if split == "train" else "test"
    matches = sorted(p for p in root.rglob("*.h5") if key in p.name)
    if len(matches) != 1:
        raise DatasetError(f"expected one '*{key}*.h5' file under {root}, found "
                           f"{[str(m.relative_to(root)) for m in matches] or 'none'}; pass the "
                           ".h5 file itself (e.g. training_objectdataset_augmentedrot_scale75.h5)")
    return matches[0]


class ScanObjectNNDataset(LabelledDataset):
    """ScanObjectNN from its HDF5 files (datasets ``data [M, P, 3]`` and ``label [M]``).

    Returns ``(points [num_points, 3], label)``. The whole file is read into memory.

    Args:
        path: The ``.h5`` file, or a folder holding exactly one ``*training*.h5`` /
            ``*test*.h5`` file for the split.
        split: ``"train"`` or ``"test"`` (used only when ``path`` is a folder).
        num_points: Points per cloud (ScanObjectNN stores 2048).
        point_selection: ``"first"`` or ``"random"`` (see :func:`select_points`).
        seed: Seed of random point selection.
        classes: Class names (default: the 15 ScanObjectNN classes).
        transform: Optional callable applied to the point tensor.
        max_bad_fraction: Tolerated fraction of bad clouds (non-finite coordinates), which are
            skipped like unreadable files of the other loaders (named ``<file>#<index>``).
    """

    def __init__(self, path: PathLike, split: str = "train", num_points: int = 2048,
                 point_selection: str = "first", seed: int = 0,
                 classes: Sequence[str] = SCANOBJECTNN_CLASSES,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> None:
        try:
            import h5py
        except ImportError as error:
            raise DatasetError("reading ScanObjectNN needs h5py: pip install 'm2pt[data]' (or h5py)") from error
        self.path = find_scanobjectnn_file(Path(path), split)
        try:
            with h5py.File(self.path, "r") as file:
                self.points = np.asarray(file["data"][:, :, :3], dtype=np.float32)
                labels = np.asarray(file["label"]).reshape(-1).astype(np.int64)
        except (OSError, KeyError) as error:
            raise DatasetError(f"cannot read ScanObjectNN file {self.path}: {error}; it must be "
                               "an HDF5 file with datasets 'data' [M, P, 3] and 'label' [M]") from error
        if len(labels) != len(self.points):
            raise DatasetError(f"{self.path}: {len(self.points)} clouds but {len(labels)} labels")
        self.classes = class_names(classes)
        if labels.size and not 0 <= labels.min() <= labels.max() < len(self.classes):
            raise DatasetError(f"{self.path}: labels span {labels.min()}..{labels.max()} but "
                               f"there are {len(self.classes)} classes; pass classes=...")
        self.targets = labels.tolist()
        self.num_points, self.point_selection, self.seed = num_points, point_selection, seed
        self.sample_shape = (num_points, 3)
        self.transform = transform
        self.tracker = BadFileTracker([f"{self.path}#{i}" for i in range(len(self.targets))], max_bad_fraction,
                                      f"ScanObjectNNDataset({self.path})")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        cloud = self.points[index]
        if not np.isfinite(cloud).all():
            raise ValueError("non-finite coordinates")
        keep = select_points(len(cloud), self.num_points, self.point_selection, self.seed * 1_000_003 + index)
        points = torch.from_numpy(normalize_to_unit_sphere(cloud[keep]).astype(np.float32))
        if self.transform is not None:
            points = self.transform(points)
        return points, self.targets[index]

    def _repr_details(self) -> str:
        return f"file='{self.path}'"
