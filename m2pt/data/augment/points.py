"""Point-MAE's point-cloud augmentation: random per-axis scale and translation, test voting.

Point-MAE fine-tunes with ``PointcloudScaleAndTranslate`` (scale in [2/3, 3/2] and shift in
[-0.2, 0.2], drawn per axis and per cloud) and optionally votes at test time: the logits of
several scaled-and-shifted copies of each cloud are averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

SCALE_RANGE = (2.0 / 3.0, 3.0 / 2.0)
TRANSLATE_RANGE = 0.2


class ScaleAndTranslate:
    """``[N, 3+]`` points -> ``xyz * s + t`` with ``s``, ``t`` drawn per axis (NumPy's global generator).

    Args:
        scale_range: Range of the per-axis scale.
        translate_range: Half-width of the per-axis shift.
    """

    def __init__(self, scale_range: tuple[float, float] = SCALE_RANGE,
                 translate_range: float = TRANSLATE_RANGE) -> None:
        self.scale_range, self.translate_range = scale_range, translate_range

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        scale = torch.from_numpy(np.random.uniform(*self.scale_range, size=3)).to(points.dtype)
        shift = torch.from_numpy(np.random.uniform(-self.translate_range, self.translate_range, size=3)
                                 ).to(points.dtype)
        out = points.clone()
        out[..., :3] = points[..., :3] * scale + shift
        return out

    def __repr__(self) -> str:
        return f"ScaleAndTranslate(scale_range={self.scale_range}, translate_range={self.translate_range})"


class VotedPoints(Dataset):
    """Each item becomes ``votes`` randomly scaled and shifted copies ``[votes, N, C]`` (test voting).

    The evaluation averages the copies' logits (``view_reduction = "logits"``, as Point-MAE).
    The copies draw from the global generators, which the loaders seed per item.
    """

    view_reduction = "logits"

    def __init__(self, dataset: Dataset, votes: int, augment: ScaleAndTranslate | None = None) -> None:
        if votes < 1:
            raise ValueError(f"test_votes must be at least 1, got {votes}")
        self.dataset, self.num_views = dataset, votes
        self.augment = augment or ScaleAndTranslate()
        self.sample_shape = (votes, *getattr(dataset, "sample_shape", ()))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        points, target = self.dataset[index]
        return torch.stack([self.augment(points) for _ in range(self.num_views)]), target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["dataset"], name)
