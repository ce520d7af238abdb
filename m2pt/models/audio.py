"""Audio model in the AudioMAE fine-tuning layout (Huang et al., NeurIPS 2022, arXiv 2207.06405).

Input: normalised log-mel filterbank frames [B, 1, T, F] (see `m2pt.models.fbank.FbankTransform`).
16x16 patches (Conv2d, 1 channel), cls token, fixed 2-D sin-cos position embedding (MAE's, zero for
the cls position) as a non-persistent buffer, timm blocks, mean pooling of the patch tokens,
`fc_norm`, `head`. Single- and multi-label tasks differ only in the loss; `multi_label` records which.
"""
import torch
from torch import nn
from timm.layers import PatchEmbed, trunc_normal_

from .input_checks import check_input, finite_checks_enabled
from .pos_embed import sincos_2d_pos_embed
from .transformer import TimmApiMixin, build_blocks, init_transformer_weights

__all__ = ["AudioTransformer"]


class AudioTransformer(TimmApiMixin, nn.Module):
    """AudioMAE-style ViT for spectrogram classification.

    Args:
        target_length: Number of fbank frames T.
        num_mel_bins: Number of mel bins F.
        patch_size: Square patch side (over frames x bins).
        num_classes: Classes of the head (0: no head).
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: Bias of the fused qkv projection.
        multi_label: Whether the task is multi-label (train with BCE, e.g. AudioSet) or single-label.
        drop_rate: Dropout before the head.
        drop_path_rate: Stochastic depth, increasing linearly to this rate.
    """

    _stem_regex = r"^cls_token|pos_embed|patch_embed"
    _no_weight_decay = ("cls_token",)

    def __init__(
            self,
            target_length: int = 1024,
            num_mel_bins: int = 128,
            patch_size: int = 16,
            num_classes: int = 527,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            multi_label: bool = False,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if target_length % patch_size or num_mel_bins % patch_size:
            raise ValueError(
                f"target_length ({target_length}) and num_mel_bins ({num_mel_bins}) must be divisible by "
                f"patch_size ({patch_size})")
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.multi_label = multi_label
        self.input_size = (1, target_length, num_mel_bins)

        self.patch_embed = PatchEmbed(
            img_size=(target_length, num_mel_bins), patch_size=patch_size, in_chans=1, embed_dim=embed_dim)
        self.grid_size = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_2d_pos_embed(embed_dim, self.grid_size, cls_token=True), persistent=False)
        self.blocks = build_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.Identity()  # AudioMAE fine-tuning with mean pooling normalises after pooling
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_head(num_classes)

        self.apply(init_transformer_weights)
        trunc_normal_(self.cls_token, std=0.02)
        self.pretrained_cfg = dict(input_size=self.input_size, num_classes=num_classes, multi_label=multi_label)

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, F] -> [B, N, D] patch tokens with the position embedding added (no cls token)."""
        return self.patch_embed(x) + self.pos_embed[:, 1:].to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed_tokens(x)
        cls_token = (self.cls_token + self.pos_embed[:, :1].to(self.cls_token.dtype)).expand(tokens.shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls_token, tokens], dim=1)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.fc_norm(x[:, 1:].mean(dim=1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.input_size, "audio model", finite=finite_checks_enabled(self))
        return self.forward_head(self.forward_features(x))
