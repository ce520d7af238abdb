"""Fixed sine-cosine position embeddings, bit-compatible with the codebases whose checkpoints omit them.

* `sincos_2d_pos_embed`: MAE / AudioMAE (`get_2d_sincos_pos_embed`), optional zero row for the cls token.
* `sinusoid_1d_table`: VideoMAE (`get_sinusoid_encoding_table`), one index per flattened token.
* `sincos_3d_pos_embed`: a separable (t, h, w) variant for video grids.
"""
from typing import Sequence

import torch

__all__ = ["sincos_1d_pos_embed", "sincos_2d_pos_embed", "sincos_3d_pos_embed", "sinusoid_1d_table"]


def sincos_1d_pos_embed(dim: int, positions: torch.Tensor, temperature: float = 10000.0) -> torch.Tensor:
    """MAE's 1-D embedding: `[sin(p * w_0..w_{D/2-1}), cos(p * w_0..w_{D/2-1})]`.

    Args:
        dim: Output dimension (even).
        positions: Positions of any shape; flattened.
        temperature: Wavelength scale.

    Returns:
        Tensor [positions.numel(), dim] in float32.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / temperature**omega
    out = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_2d_pos_embed(dim: int, grid_size: Sequence[int], cls_token: bool = False) -> torch.Tensor:
    """MAE / AudioMAE 2-D embedding for a row-major (H, W) token grid.

    Like the reference, the first half of the channels encodes the column (w) index and the second
    half the row (h) index; the cls token, if any, gets an all-zero row in front.

    Args:
        dim: Embedding dimension (divisible by 4).
        grid_size: (H, W) number of patches along each axis.
        cls_token: Prepend a zero embedding for the cls token.

    Returns:
        Tensor [1, (1 +) H * W, dim].
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a dimension divisible by 4, got {dim}")
    grid_h, grid_w = int(grid_size[0]), int(grid_size[1])
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    emb = torch.cat([sincos_1d_pos_embed(dim // 2, cols), sincos_1d_pos_embed(dim // 2, rows)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb], dim=0)
    return emb.unsqueeze(0)


def sincos_3d_pos_embed(dim: int, grid_size: Sequence[int]) -> torch.Tensor:
    """Separable 3-D embedding for a (T, H, W) grid flattened in that order.

    Channels are split as [t | h | w] with sizes (dim - 2 * s, s, s) where s = 2 * (dim // 6), so
    every part has an even width.

    Args:
        dim: Embedding dimension (even).
        grid_size: (T, H, W) number of tubelets along each axis.

    Returns:
        Tensor [1, T * H * W, dim].
    """
    spatial = 2 * (dim // 6)
    temporal = dim - 2 * spatial
    if temporal <= 0 or spatial <= 0 or temporal % 2:
        raise ValueError(f"3-D sin-cos embedding needs an even dimension >= 6, got {dim}")
    t, h, w = torch.meshgrid(*[torch.arange(int(s)) for s in grid_size], indexing="ij")
    emb = torch.cat([
        sincos_1d_pos_embed(temporal, t),
        sincos_1d_pos_embed(spatial, h),
        sincos_1d_pos_embed(spatial, w),
    ], dim=1)
    return emb.unsqueeze(0)


def sinusoid_1d_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's table: channel 2i is sin(p / 10000^(2i/D)), channel 2i+1 the matching cos.

    Args:
        num_positions: Number of tokens (all tubelets, flattened T, H, W).
        dim: Embedding dimension.

    Returns:
        Tensor [1, num_positions, dim].
    """
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dim) // 2).to(torch.float64) / dim
    angles = positions / torch.pow(10000.0, exponent)[None, :]
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float().unsqueeze(0)
