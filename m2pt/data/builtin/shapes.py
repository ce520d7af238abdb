"""Synthetic shape classes sampled from trimesh primitives, stored in the ModelNet layout.

Each shape is a primitive (box, sphere, cylinder, ...) with a random anisotropic scale
(0.6-1.4 per axis) and a random 3D rotation, surface-sampled (area-weighted) to
``points_per_shape`` points with their normals, then jittered (Gaussian, sigma 0.01 of the
shape's radius, clipped at 0.03). Files are written as ModelNet ``x,y,z,nx,ny,nz`` text with
``shapes_shape_names.txt`` / ``shapes_{train,test}.txt`` and read back through
:class:`m2pt.data.points.ModelNet40Dataset`, the loader users' ModelNet data goes through.
Train and test shapes come from different random streams of the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from m2pt.data.cache import PathLike, data_root, generating_folder
from m2pt.data.errors import DatasetError
from m2pt.data.points import ModelNet40Dataset
from m2pt.optional import optional_import
trimesh = optional_import("trimesh", "data", "the built-in shapes")

PRIMITIVES: dict[str, Callable[[], trimesh.Trimesh]] = {
    "box": lambda: trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
    "sphere": lambda: trimesh.creation.icosphere(subdivisions=3, radius=0.7),
    "cylinder": lambda: trimesh.creation.cylinder(radius=0.5, height=1.4, sections=32),
    "cone": lambda: trimesh.creation.cone(radius=0.6, height=1.2, sections=32),
    "torus": lambda: trimesh.creation.torus(major_radius=0.7, minor_radius=0.22),
    "capsule": lambda: trimesh.creation.capsule(height=1.0, radius=0.4),
    "annulus": lambda: trimesh.creation.annulus(r_min=0.45, r_max=0.8, height=0.3),
    "pyramid": lambda: trimesh.creation.cone(radius=0.7, height=1.0, sections=4),
    "hexagonal_prism": lambda: trimesh.creation.cylinder(radius=0.6, height=0.8, sections=6),
    "icosahedron": lambda: trimesh.creation.icosahedron(),
}
SCALE_RANGE = (0.6, 1.4)
JITTER_SIGMA, JITTER_CLIP = 0.01, 0.03


def random_shape_points(name: str, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``[num_points, 6]`` points and normals of a randomly scaled, rotated primitive."""
    mesh = PRIMITIVES[name]()
    mesh.apply_transform(np.diag([*rng.uniform(*SCALE_RANGE, size=3), 1.0]))
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rand=rng.random(3)))
    points, faces = trimesh.sample.sample_surface(mesh, num_points, seed=rng.integers(2**31))
    radius = np.linalg.norm(points - points.mean(axis=0), axis=1).max()
    jitter = np.clip(rng.normal(0.0, JITTER_SIGMA, points.shape), -JITTER_CLIP, JITTER_CLIP)
    return np.hstack([points + jitter * radius, mesh.face_normals[faces]]).astype(np.float32)


def generate_shapes(destination: Path, sizes: dict[str, int], points_per_shape: int,
                    seed: int) -> None:
    """Write ``sizes[split]`` shapes per split (balanced over classes) in the ModelNet layout."""
    names = list(PRIMITIVES)
    counters = dict.fromkeys(names, 0)
    for name in names:
        (destination / name).mkdir()
    for split_number, (split, size) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, split_number])
        shape_ids = []
        for number in tqdm(range(size), desc=f"shapes ({split})", unit="shape"):
            name = names[number % len(names)]
            counters[name] += 1
            shape_id = f"{name}_{counters[name]:04d}"
            np.savetxt(destination / name / f"{shape_id}.txt",
                       random_shape_points(name, points_per_shape, rng), fmt="%.6f", delimiter=",")
            shape_ids.append(shape_id)
        (destination / f"shapes_{split}.txt").write_text("\n".join(shape_ids) + "\n")
    (destination / "shapes_shape_names.txt").write_text("\n".join(names) + "\n")
    (destination / "meta.json").write_text(json.dumps(
        {"seed": seed, "sizes": sizes, "points_per_shape": points_per_shape}, indent=2))


class ShapesDataset(ModelNet40Dataset):
    """Built-in primitive shapes; returns ``(points [num_points, 3], label)``.

    Args:
        split: ``"train"`` or ``"test"`` (``"val"`` means ``"test"``).
        root: Data cache folder (default ``$M2PT_DATA`` or ``~/.cache/m2pt/data``).
        seed: Seed of scales, rotations, sampling and jitter.
        train_size: Number of training shapes (balanced over the classes).
        test_size: Number of test shapes.
        points_per_shape: Points stored per shape.
        num_points: Points returned per shape (default ``points_per_shape``).
        transform: Optional callable applied to the point tensor.
    """

    def __init__(self, split: str = "train", root: PathLike | None = None, seed: int = 0,
                 train_size: int = 800, test_size: int = 200, points_per_shape: int = 1024,
                 num_points: int | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        split = {"val": "test"}.get(split, split)
        if split not in ("train", "test"):
            raise DatasetError(f"split must be 'train' or 'test', got '{split}'")
        self.folder = (data_root(root) / "shapes" /
                       f"train{train_size}_test{test_size}_p{points_per_shape}_seed{seed}")
        if not self.folder.is_dir():
            with generating_folder(self.folder) as tmp:
                generate_shapes(tmp, {"train": train_size, "test": test_size},
                                points_per_shape, seed)
        super().__init__(self.folder, split, num_points=num_points or points_per_shape,
                         seed=seed, transform=transform)
