"""A folder of meshes (OBJ, PLY, OFF, STL, GLB), one sub-folder per class.

Accepted layouts: ``<root>/<split>/<class>/<mesh>``, ``<root>/<class>/<split>/<mesh>`` (the
original ModelNet mesh layout), or ``<root>/<class>/<mesh>`` with ``split=None``. Meshes are
loaded with trimesh and their surfaces sampled (area-weighted) to ``num_points`` points with a
seed derived from ``seed`` and the item index, so every item is the same on every epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch

from m2pt.data.base import LabelledDataset
from m2pt.data.errors import DatasetError
from m2pt.data.points import normalize_to_unit_sphere
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker
from m2pt.optional import optional_import
trimesh = optional_import("trimesh", "data", "m2pt.data.meshes (mesh reading)")

PathLike = Union[str, os.PathLike]

MESH_SUFFIXES = {".obj", ".ply", ".off", ".stl", ".glb"}


def sample_mesh_surface(path: PathLike, num_points: int, seed: int) -> np.ndarray:
    """Load a mesh and sample ``num_points`` surface points ``[N, 3]`` (float32, seeded)."""
    mesh = trimesh.load(str(path), force="mesh")
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or mesh.area <= 0:
        raise ValueError("no surface (the file holds no faces)")
    points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
    return np.asarray(points, dtype=np.float32)


def _mesh_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)


def index_mesh_folder(root: Path, split: str | None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Return ``(class names, [(mesh path, label), ...])`` for one of the accepted layouts."""
    if not root.is_dir():
        raise DatasetError(f"mesh folder {root} does not exist")
    if split is not None and (root / split).is_dir():
        root, split = root / split, None
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    classes = [p.name for p in class_dirs]
    items = []
    for label, class_dir in enumerate(class_dirs):
        folder = class_dir if split is None else class_dir / split
        if split is not None and not folder.is_dir():
            raise DatasetError(f"no '{split}' folder in {root} nor in {class_dir}; use "
                               "<root>/<split>/<class>/, <root>/<class>/<split>/, or split=None "
                               "for <root>/<class>/")
        items += [(path, label) for path in _mesh_files(folder)]
    if not items:
        raise DatasetError(f"no mesh files ({sorted(MESH_SUFFIXES)}) found in the class "
                           f"sub-folders of {root}")
    return classes, items


class MeshFolderDataset(LabelledDataset):
    """Meshes sorted into class folders; returns ``(points [num_points, 3], label)``.

    Args:
        root: The mesh folder.
        split: Split folder name (see module doc), or ``None`` for a layout without splits.
        num_points: Surface points per mesh.
        seed: Seed of the surface sampling (combined with the item index).
        cache: Keep sampled clouds in memory (per process) so each mesh is loaded once.
        transform: Optional callable applied to the point tensor.
        max_bad_fraction: Tolerated fraction of unreadable meshes.
    """

    def __init__(self, root: PathLike, split: str | None = "train", num_points: int = 1024,
                 seed: int = 0, cache: bool = True,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> None:
        self.root = Path(root)
        self.classes, items = index_mesh_folder(self.root, split)
        self.paths = [path for path, _ in items]
        self.targets = [label for _, label in items]
        self.split, self.num_points, self.seed = split, num_points, seed
        self.sample_shape = (num_points, 3)
        self.transform = transform
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.tracker = BadFileTracker([str(p) for p in self.paths], max_bad_fraction,
                                      f"MeshFolderDataset({self.root}, {split})")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        points = self._cache.get(index) if self._cache is not None else None
        if points is None:
            cloud = sample_mesh_surface(self.paths[index], self.num_points, self.seed * 1_000_003 + index)
            points = torch.from_numpy(normalize_to_unit_sphere(cloud))
            if self._cache is not None:
                self._cache[index] = points
        if self.transform is not None:
            points = self.transform(points.clone())
        return points, self.targets[index]

    def _repr_details(self) -> str:
        return f"split={self.split!r}, root='{self.root}'"
