"""Video model in the VideoMAE fine-tuning layout (Tong et al., NeurIPS 2022, arXiv 2203.12602).

Tubelet embedding (Conv3d), fixed sin-cos position embedding kept as a non-persistent buffer
(VideoMAE checkpoints do not store it), no cls token, timm blocks with qkv bias, mean pooling,
`fc_norm`, `head`. VideoMAE's split `q_bias` / `v_bias` map onto `attn.qkv.bias` with a zero k part.
"""
from typing import Tuple

import torch
from torch import nn

from .input_checks import check_input, finite_checks_enabled
from .pos_embed import sincos_3d_pos_embed, sinusoid_1d_table
from .transformer import TimmApiMixin, build_blocks, init_transformer_weights

__all__ = ["TubeletEmbed", "VideoTransformer", "VIDEO_POS_EMBED_TYPES"]

VIDEO_POS_EMBED_TYPES = ("videomae", "sincos_3d")


class TubeletEmbed(nn.Module):
    """[B, C, T, H, W] -> [B, T/t * H/p * W/p, D] with one Conv3d of kernel = stride = (t, p, p)."""

    def __init__(self, in_chans: int, embed_dim: int, tubelet_size: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(
            in_chans, embed_dim, kernel_size=(tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoTransformer(TimmApiMixin, nn.Module):
    """VideoMAE-style ViT for clip classification.

    Args:
        num_frames: Frames per clip (T).
        img_size: Square frame side.
        patch_size: Spatial tubelet side.
        tubelet_size: Temporal tubelet length.
        in_chans: Input channels.
        num_classes: Classes of the head (0: no head).
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: Bias of the fused qkv projection.
        pos_embed_type: "videomae" (VideoMAE's 1-D sinusoid table over the flattened tokens, needed to
            fine-tune VideoMAE checkpoints faithfully) or "sincos_3d" (separable t/h/w embedding).
        drop_rate: Dropout before the head.
        drop_path_rate: Stochastic depth, increasing linearly to this rate.
    """

    _stem_regex = r"^patch_embed|pos_embed"

    def __init__(
            self,
            num_frames: int = 16,
            img_size: int = 224,
            patch_size: int = 16,
            tubelet_size: int = 2,
            in_chans: int = 3,
            num_classes: int = 400,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            pos_embed_type: str = "videomae",
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_frames % tubelet_size or img_size % patch_size:
            raise ValueError(
                f"num_frames ({num_frames}) must be divisible by tubelet_size ({tubelet_size}) and "
                f"img_size ({img_size}) by patch_size ({patch_size})")
        if pos_embed_type not in VIDEO_POS_EMBED_TYPES:
            raise ValueError(f"unknown pos_embed_type {pos_embed_type!r}; valid: {', '.join(VIDEO_POS_EMBED_TYPES)}")
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.grid_size: Tuple[int, int, int] = (
            num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.input_size = (in_chans, num_frames, img_size, img_size)

        self.patch_embed = TubeletEmbed(in_chans, embed_dim, tubelet_size, patch_size)
        if pos_embed_type == "videomae":
            pos_embed = sinusoid_1d_table(self.num_patches, embed_dim)
        else:
            pos_embed = sincos_3d_pos_embed(embed_dim, self.grid_size)
        self.register_buffer("pos_embed", pos_embed, persistent=False)
        self.blocks = build_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.Identity()  # VideoMAE with mean pooling normalises after pooling (fc_norm)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_head(num_classes)

        self.apply(init_transformer_weights)
        self.pretrained_cfg = dict(input_size=self.input_size, num_classes=num_classes)

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, H, W] -> [B, N, D] tubelet tokens with the position embedding added."""
        return self.patch_embed(x) + self.pos_embed.to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.embed_tokens(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.fc_norm(x.mean(dim=1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, "video model", finite=finite_checks_enabled(self))
        return self.forward_head(self.forward_features(x))
