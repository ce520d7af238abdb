"""ShapeNetPart part segmentation (``shapenetcore_partanno_segmentation_benchmark_v0_normal``).

Layout: ``synsetoffset2category.txt`` (``<Category>\\t<synset>`` lines, label order),
``<synset>/<shape id>.txt`` (``x y z nx ny nz part_label`` lines, part labels global 0..49)
and ``train_test_split/shuffled_{train,val,test}_file_list.json`` (lists of
``shape_data/<synset>/<shape id>``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch

from m2pt.data.base import LabelledDataset
from m2pt.data.errors import DatasetError
from m2pt.data.points import normalize_to_unit_sphere, select_points
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker

PathLike = Union[str, os.PathLike]

# The standard part ids of each category (PointNet++ / Point-MAE).
SHAPENET_PART_SEGMENTS = {
    "Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7], "Car": [8, 9, 10, 11],
    "Chair": [12, 13, 14, 15], "Earphone": [16, 17, 18], "Guitar": [19, 20, 21],
    "Knife": [22, 23], "Lamp": [24, 25, 26, 27], "Laptop": [28, 29],
    "Motorbike": [30, 31, 32, 33, 34, 35], "Mug": [36, 37], "Pistol": [38, 39, 40],
    "Rocket": [41, 42, 43], "Skateboard": [44, 45, 46], "Table": [47, 48, 49],
}
NUM_PART_CLASSES = 50


def read_shapenet_part_txt(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``x y z nx ny nz part`` lines; return ``(points [N, 3], part labels [N])``."""
    data = np.loadtxt(path, dtype=np.float32, ndmin=2)
    if data.shape[1] < 4:
        raise ValueError(f"expected x y z [nx ny nz] part columns, got {data.shape[1]}")
    if len(data) == 0:
        raise ValueError("no points")
    return data[:, :3], data[:, -1].astype(np.int64)


class ShapeNetPartDataset(LabelledDataset):
    """ShapeNetPart; returns ``(points [N, 3], part_labels [N] long, object_class int)``.

    Args:
        root: The dataset folder.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        num_points: Points per shape (seeded random subset; drawn with replacement if fewer).
        categories: Keep only these category names (default: all).
        seed: Seed of the point subsets (combined with the item index).
        transform: Optional callable applied to the point tensor.
        max_bad_fraction: Tolerated fraction of unreadable files.
    """

    num_part_classes = NUM_PART_CLASSES

    def __init__(self, root: PathLike, split: str = "train", num_points: int = 2048,
                 categories: Sequence[str] | None = None, seed: int = 0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION) -> None:
        self.root = Path(root)
        category_file = self.root / "synsetoffset2category.txt"
        if not category_file.is_file():
            raise DatasetError(f"{category_file} not found; pass the folder "
                               "shapenetcore_partanno_segmentation_benchmark_v0_normal")
        synset_to_name = {}
        for line in category_file.read_text().splitlines():
            if line.strip():
                name, synset = line.split()
                synset_to_name[synset] = name
        self.classes = list(synset_to_name.values())
        if categories is not None:
            unknown = sorted(set(categories) - set(self.classes))
            if unknown:
                raise DatasetError(f"unknown ShapeNetPart categories {unknown}; known: {self.classes}")
        lookup = {name: index for index, name in enumerate(self.classes)}
        entries = []
        for part in (["train", "val"] if split == "trainval" else [split]):
            split_file = self.root / "train_test_split" / f"shuffled_{part}_file_list.json"
            if not split_file.is_file():
                raise DatasetError(f"split file {split_file} not found (split must be train, "
                                   "val, test or trainval)")
            entries += json.loads(split_file.read_text())
        self.paths, self.targets = [], []
        for entry in entries:
            synset, shape_id = entry.split("/")[-2:]
            if synset not in synset_to_name:
                raise DatasetError(f"split entry '{entry}' has synset {synset}, which is not in "
                                   f"{category_file.name}")
            if categories is None or synset_to_name[synset] in categories:
                self.paths.append(self.root / synset / f"{shape_id}.txt")
                self.targets.append(lookup[synset_to_name[synset]])
        if not self.paths:
            raise DatasetError(f"no shapes in split '{split}' of {self.root}")
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise DatasetError(f"the '{split}' split lists {len(missing)} missing files, e.g. {missing[:3]}")
        self.split, self.num_points, self.seed = split, num_points, seed
        self.sample_shape = (num_points, 3)
        self.transform = transform
        self.tracker = BadFileTracker([str(p) for p in self.paths], max_bad_fraction,
                                      f"ShapeNetPartDataset({self.root}, {split})")

    def parts_of_class(self, object_class: int) -> list[int]:
        """Global part ids of a category (the standard ShapeNetPart assignment)."""
        return SHAPENET_PART_SEGMENTS[self.classes[object_class]]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        points, parts = read_shapenet_part_txt(self.paths[index])
        if parts.min() < 0 or parts.max() >= NUM_PART_CLASSES:
            raise ValueError(f"part labels {parts.min()}..{parts.max()} outside 0..49")
        keep = select_points(len(points), self.num_points, "random", self.seed * 1_000_003 + index)
        tensor = torch.from_numpy(normalize_to_unit_sphere(points[keep]).astype(np.float32))
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, torch.from_numpy(parts[keep]), self.targets[index]

    def _repr_details(self) -> str:
        return f"split='{self.split}', root='{self.root}'"
