"""Point-cloud models in the Point-MAE layout (Pang et al., ECCV 2022, arXiv 2203.06604).

Tokenizer: FPS centres + kNN neighbourhoods -> mini-PointNet (`encoder`) -> one token per group;
position embedding: MLP of the group centres (`pos_embed`), added before *every* block as in
Point-MAE's `TransformerEncoder` (`x = block(x + pos)`). Blocks are timm `Block`s without qkv bias.

* `PointTransformer`: classification, head on concat(cls token, max over group tokens).
* `PointPartSegTransformer`: part segmentation, fuses three blocks' features and propagates them
  back to every input point with 3-NN inverse-distance interpolation (PointNet++).
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from timm.layers import trunc_normal_

from .input_checks import check_input, finite_checks_enabled
from .point_ops import exporting, group_points, three_nn_interpolate
from .transformer import TimmApiMixin, build_blocks, init_transformer_weights

__all__ = ["MiniPointNet", "PointTransformer", "PointPartSegTransformer", "default_fetch_indices"]


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: shared MLP 3->128->256, max-pool, concat global, 512->512->D, max-pool."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Conv1d(512, embed_dim, 1))

    def forward(self, neighborhood: torch.Tensor) -> torch.Tensor:
        """[B, G, K, 3] centred neighbourhoods -> [B, G, D] group tokens."""
        batch, groups, group_size, _ = neighborhood.shape
        x = self.first_conv(neighborhood.reshape(batch * groups, group_size, 3).transpose(1, 2))
        global_feature = x.max(dim=2, keepdim=True).values
        x = torch.cat([global_feature.expand(-1, -1, group_size), x], dim=1)
        x = self.second_conv(x).max(dim=2).values
        return x.reshape(batch, groups, self.embed_dim)


class PointTransformer(TimmApiMixin, nn.Module):
    """Point-MAE transformer for point-cloud classification.

    Args:
        num_points: Points per input cloud (checked on input).
        num_groups: G, number of FPS centres / tokens.
        group_size: K, points per kNN neighbourhood.
        num_classes: Classes of the head (0: no head, `forward` returns pre-logits).
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: Bias of the fused qkv projection (False in Point-MAE).
        drop_rate: Dropout in the classification MLP head (0.5 in Point-MAE).
        drop_path_rate: Stochastic depth, increasing linearly to this rate.
        pos_every_block: Add the position embedding before every block (Point-MAE) or the first only.
    """

    _stem_regex = r"^cls_token|cls_pos|pos_embed|encoder"
    _no_weight_decay = ("cls_token", "cls_pos")

    def __init__(
            self,
            num_points: int = 1024,
            num_groups: int = 64,
            group_size: int = 32,
            num_classes: int = 40,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = False,
            drop_rate: float = 0.5,
            drop_path_rate: float = 0.0,
            pos_every_block: bool = True,
    ) -> None:
        super().__init__()
        if num_groups > num_points or group_size > num_points:
            raise ValueError(
                f"num_groups ({num_groups}) and group_size ({group_size}) must not exceed num_points ({num_points})")
        self.num_points = num_points
        self.num_groups = num_groups
        self.group_size = group_size
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.head_hidden_size = 2 * embed_dim  # pre-logits: concat(cls token, max over groups)
        self.drop_rate = drop_rate
        self.pos_every_block = pos_every_block

        self.encoder = MiniPointNet(embed_dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Point-MAE uses torch's default LayerNorm eps (1e-5); the image/video/audio codebases use 1e-6
        self.blocks = build_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, norm_eps=1e-5)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        self.head = self._make_head(num_classes)

        self.apply(init_transformer_weights)
        trunc_normal_(self.cls_token, std=0.02)
        trunc_normal_(self.cls_pos, std=0.02)
        self.pretrained_cfg = dict(input_size=(num_points, 3), num_classes=num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return nn.Sequential(
            nn.Linear(2 * self.embed_dim, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(self.drop_rate),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(self.drop_rate),
            nn.Linear(256, num_classes),
        )

    def check_points(self, points: torch.Tensor) -> None:
        """Raise `ValueError` unless `points` is a finite [B, num_points, 3] tensor."""
        if isinstance(points, torch.Tensor) and points.dim() == 3 and points.shape[-1] == 3 \
                and points.shape[1] < max(self.group_size, self.num_groups):
            raise ValueError(
                f"point model needs at least max(group_size={self.group_size}, num_groups={self.num_groups}) "
                f"points per cloud, got {points.shape[1]}")
        check_input(points, (self.num_points, 3), "point model", finite=finite_checks_enabled(self))

    def group(self, points: torch.Tensor, generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """[B, N, 3] -> (neighborhood [B, G, K, 3] centred, center [B, G, 3])."""
        return group_points(points, self.num_groups, self.group_size, generator)

    def embed_groups(self, neighborhood: torch.Tensor, center: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Group tokens and their position embeddings, both [B, G, D], kept apart."""
        return self.encoder(neighborhood), self.pos_embed(center)

    def embed_tokens(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N, 3] -> [B, G, D] group tokens with the position embedding added (no cls token)."""
        tokens, pos = self.embed_groups(*self.group(points))
        return tokens + pos

    def forward_blocks(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Run the blocks on tokens `x` (without position) and their position embedding `pos`."""
        for block in self.blocks:
            x = block(x + pos)
            if not self.pos_every_block:
                pos = torch.zeros_like(pos)
        return x

    def forward_tokens(self, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokenize and prepend the cls token: (tokens [B, 1+G, D], pos [B, 1+G, D], center [B, G, 3])."""
        neighborhood, center = self.group(points)
        tokens, pos = self.embed_groups(neighborhood, center)
        batch = tokens.shape[0]
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), pos], dim=1)
        return tokens, pos, center

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N, 3] -> normalised tokens [B, 1+G, D] (cls token first)."""
        tokens, pos, _ = self.forward_tokens(points)
        return self.norm(self.forward_blocks(tokens, pos))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.cat([x[:, 0], x[:, 1:].max(dim=1).values], dim=-1)
        return x if pre_logits else self.head(x)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        self.check_points(points)
        return self.forward_head(self.forward_features(points))


def default_fetch_indices(depth: int) -> Tuple[int, int, int]:
    """Blocks whose outputs the part-segmentation head fuses: ceil(k * depth / 3) - 1 for k = 1, 2, 3.

    Gives Point-MAE's (3, 7, 11) for depth 12, (1, 3, 5) for depth 6; shallower models repeat blocks.
    """
    return tuple(max(0, math.ceil(k * depth / 3) - 1) for k in (1, 2, 3))  # type: ignore[return-value]


class PointPartSegTransformer(PointTransformer):
    """Point-MAE part segmentation: per-point part logits [B, num_classes, N].

    The features of three blocks (`fetch_indices`) are normalised, concatenated ([B, G, 3D]),
    pooled (max and mean) into a global feature together with an embedding of the object category,
    and propagated to every input point by 3-NN inverse-distance interpolation from the group centres
    (fed with the point coordinates, as Point-MAE), then classified by a shared per-point MLP.

    Args:
        num_classes: Number of part labels (50 for ShapeNetPart).
        num_object_classes: Number of object categories given as the one-hot `object_label` input
            (16 for ShapeNetPart); 0 disables the label branch.
        fetch_indices: Block indices to fuse; default `default_fetch_indices(depth)`.
        propagation_dims: Widths of the propagation MLP (Point-MAE: 4 * D, 1024).
        **kwargs: `PointTransformer` arguments (`num_points` defaults to 2048 as in ShapeNetPart).
    """

    def __init__(
            self,
            num_classes: int = 50,
            num_object_classes: int = 16,
            fetch_indices: Optional[Sequence[int]] = None,
            propagation_dims: Optional[Sequence[int]] = None,
            num_points: int = 2048,
            num_groups: int = 128,
            **kwargs,
    ) -> None:
        super().__init__(num_points=num_points, num_groups=num_groups, num_classes=0, **kwargs)
        depth = len(self.blocks)
        self.fetch_indices = tuple(fetch_indices) if fetch_indices is not None else default_fetch_indices(depth)
        if len(self.fetch_indices) != 3 or not all(0 <= i < depth for i in self.fetch_indices):
            raise ValueError(f"fetch_indices must be three block indices in [0, {depth}), got {self.fetch_indices}")
        self.num_object_classes = num_object_classes
        fused_dim = 3 * self.embed_dim
        propagation_dims = tuple(propagation_dims or (4 * self.embed_dim, 1024))
        label_dim = 64 if num_object_classes > 0 else 0
        if num_object_classes > 0:
            self.label_conv = nn.Sequential(
                nn.Conv1d(num_object_classes, 64, 1, bias=False), nn.BatchNorm1d(64), nn.LeakyReLU(0.2))
        layers, in_dim = [], fused_dim + 3
        for out_dim in propagation_dims:
            layers += [nn.Conv1d(in_dim, out_dim, 1), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
            in_dim = out_dim
        self.propagation = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.seg_head_in_dim = in_dim + 2 * fused_dim + label_dim
        self.head = self._make_seg_head(num_classes)
        for module in (self.propagation, self.head) + ((self.label_conv,) if num_object_classes > 0 else ()):
            module.apply(init_transformer_weights)
        self.pretrained_cfg = dict(input_size=(num_points, 3), num_classes=num_classes, task="partseg")

    def _make_seg_head(self, num_classes: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv1d(self.seg_head_in_dim, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Conv1d(512, 256, 1), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
            nn.Conv1d(256, num_classes, 1),
        )

    def _make_head(self, num_classes: int) -> nn.Module:
        if not hasattr(self, "seg_head_in_dim"):  # called by PointTransformer.__init__, replaced later
            return nn.Identity()
        if num_classes <= 0:
            raise ValueError("a part-segmentation model needs num_classes >= 1 (number of part labels)")
        return self._make_seg_head(num_classes)

    def forward_features(self, points: torch.Tensor, object_label: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, N, 3] (+ object label) -> per-point features [B, C, N] before the segmentation head."""
        tokens, pos, center = self.forward_tokens(points)
        fetched = {}
        x = tokens
        for index, block in enumerate(self.blocks):
            x = block(x + pos)
            if not self.pos_every_block:
                pos = torch.zeros_like(pos)
            if index in self.fetch_indices:
                fetched[index] = self.norm(x)[:, 1:]
        fused = torch.cat([fetched[i] for i in self.fetch_indices], dim=-1)  # [B, G, 3D]

        num_points = points.shape[1]
        global_feature = torch.cat([fused.max(dim=1).values, fused.mean(dim=1)], dim=-1)  # [B, 6D]
        per_point = torch.cat([points, three_nn_interpolate(points, center, fused)], dim=-1)
        parts = [self.propagation(per_point.transpose(1, 2)), global_feature[:, :, None].expand(-1, -1, num_points)]
        if self.num_object_classes > 0:
            one_hot = self._one_hot(object_label, points.shape[0]).to(points.dtype)
            parts.append(self.label_conv(one_hot[:, :, None]).expand(-1, -1, num_points))
        return torch.cat(parts, dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, points: torch.Tensor, object_label: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-point part logits.

        Args:
            points: [B, N, 3].
            object_label: [B] category indices or [B, num_object_classes] one-hot; required when
                `num_object_classes > 0`.

        Returns:
            [B, num_classes, N] logits.
        """
        self.check_points(points)
        return self.forward_head(self.forward_features(points, object_label))

    def _one_hot(self, object_label: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        if object_label is None:
            raise ValueError(f"part-segmentation model needs object_label ([B] indices in [0, {self.num_object_classes}))")
        if object_label.dim() == 1 and object_label.shape[0] == batch:
            # a data-dependent check cannot be traced; an exported model's one-hot of a bad label is zero
            if not exporting() and (object_label.min() < 0 or object_label.max() >= self.num_object_classes):
                raise ValueError(f"object_label values must lie in [0, {self.num_object_classes})")
            return nn.functional.one_hot(object_label.long(), self.num_object_classes)
        if object_label.shape == (batch, self.num_object_classes):
            return object_label
        raise ValueError(
            f"object_label must be [B] indices or [B, {self.num_object_classes}] one-hot, got {list(object_label.shape)}")
