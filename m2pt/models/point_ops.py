"""Point-cloud operations of Point-MAE / PointNet++ in plain, batched PyTorch (no CUDA extension).

All index computations run under `torch.no_grad()`; only the gathered coordinates carry gradients.
Determinism: `farthest_point_sample` starts every cloud at point 0 (as the pointnet2 CUDA kernel)
unless a `torch.Generator` is given, in which case each cloud starts at a random point drawn from it.
Ties (equal distances) resolve to the lowest index.
"""
from typing import Optional, Tuple

import torch


__all__ = [
    "farthest_point_sample",
    "gather_points",
    "knn_indices",
    "group_points",
    "three_nn_interpolate",
]


def exporting() -> bool:
    """True while an ONNX exporter traces the model (TorchScript tracing or ``torch.export``)."""
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.5
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or is_exporting()


def _distances(queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distances [B, M, N] between [B, M, 3] and [B, N, 3] points.

    ``torch.cdist`` (5x faster here) in PyTorch; written out while exporting, because ONNX has no
    ``cdist``. The two agree to float rounding (about 5e-7), so a near tie can order neighbours
    differently in the exported model; ``m2pt export --onnx`` reports the largest difference.
    """
    if exporting():
        return (queries.float()[:, :, None, :] - points.float()[:, None, :, :]).square().sum(-1).sqrt()
    return torch.cdist(queries.float(), points.float(), compute_mode="donot_use_mm_for_euclid_dist")


@torch.no_grad()
def farthest_point_sample(
        points: torch.Tensor,
        num_samples: int,
        generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Farthest point sampling, vectorised over the batch (the loop runs over the samples only).

    Each step picks, in every cloud, the point farthest from the points already picked.

    Args:
        points: [B, N, 3] coordinates.
        num_samples: Number of points to pick (<= N).
        generator: If given, the start point of each cloud is drawn from it; else index 0.

    Returns:
        [B, num_samples] long indices into N.
    """
    batch, num_points, _ = points.shape
    if num_samples > num_points:
        raise ValueError(f"cannot sample {num_samples} points from clouds of {num_points} points")
    xyz = points.float().transpose(1, 2).contiguous()  # [B, 3, N]: the distance is a sum of 3 rows
    if generator is None:
        farthest = torch.zeros(batch, dtype=torch.long, device=points.device)
    else:
        farthest = torch.randint(num_points, (batch,), generator=generator, device=generator.device).to(points.device)
    indices = torch.empty(batch, num_samples, dtype=torch.long, device=points.device)
    min_sq_dist = torch.full((batch, num_points), float("inf"), device=points.device)
    for i in range(num_samples):
        indices[:, i] = farthest
        picked = torch.gather(xyz, 2, farthest[:, None, None].expand(-1, 3, 1))
        min_sq_dist = torch.minimum(min_sq_dist, (xyz - picked).square().sum(1))
        farthest = min_sq_dist.argmax(-1)
    return indices


def gather_points(points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Gather rows of `points` [B, N, C] with `indices` [B, ...] -> [B, ..., C]."""
    batch = points.shape[0]
    flat = indices.reshape(batch, -1)
    gathered = torch.gather(points, 1, flat[..., None].expand(-1, -1, points.shape[-1]))
    return gathered.reshape(*indices.shape, points.shape[-1])


@torch.no_grad()
def knn_indices(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` nearest `points` [B, N, 3] of each query [B, M, 3], nearest first.

    Uses exact (non-matmul) Euclidean distances so results match a brute-force search.

    Returns:
        [B, M, k] long indices into N.
    """
    if k > points.shape[1]:
        raise ValueError(f"cannot take {k} nearest neighbours among {points.shape[1]} points")
    return _distances(queries, points).topk(k, dim=-1, largest=False, sorted=True).indices


def group_points(
        points: torch.Tensor,
        num_groups: int,
        group_size: int,
        generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Point-MAE grouping: FPS centres, kNN neighbourhoods, coordinates relative to their centre.

    Args:
        points: [B, N, 3].
        num_groups: G centres picked by farthest point sampling.
        group_size: K points per neighbourhood (the centre itself included).
        generator: Optional FPS start generator (see `farthest_point_sample`).

    Returns:
        neighborhood [B, G, K, 3] (centred), center [B, G, 3].
    """
    center = gather_points(points, farthest_point_sample(points, num_groups, generator))
    neighborhood = gather_points(points, knn_indices(center, points, group_size))
    return neighborhood - center[:, :, None, :], center


def three_nn_interpolate(
        targets: torch.Tensor,
        sources: torch.Tensor,
        source_features: torch.Tensor,
        eps: float = 1e-8,
) -> torch.Tensor:
    """PointNet++ feature propagation: inverse squared-distance weights over the 3 nearest sources.

    Args:
        targets: [B, N, 3] points that receive features.
        sources: [B, S, 3] points that carry features (S >= 1; fewer than 3 uses all of them).
        source_features: [B, S, C].
        eps: Added to squared distances before inversion.

    Returns:
        [B, N, C] interpolated features.
    """
    num_sources = sources.shape[1]
    if num_sources == 1:
        return source_features.expand(-1, targets.shape[1], -1)
    k = min(3, num_sources)
    with torch.no_grad():
        sq_dist = _distances(targets, sources).square()
        nearest_sq_dist, nearest = sq_dist.topk(k, dim=-1, largest=False, sorted=True)
        # 1 / (d + eps), scaled by eps (it cancels in the normalisation): ONNX graph optimizers
        # remove an added constant as small as 1e-8 as "x + 0", which turns a zero distance into inf.
        weights = 1.0 / (nearest_sq_dist / eps + 1.0)
        weights = weights / weights.sum(-1, keepdim=True)
    neighbour_features = gather_points(source_features, nearest)  # [B, N, k, C]
    return (neighbour_features * weights[..., None].to(source_features.dtype)).sum(2)
