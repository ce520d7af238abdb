"""Pieces shared by the video, point and audio models: the timm block stack, init, and the timm model API."""
from functools import partial
from typing import Dict, List, Optional, Set, Tuple, Union

import torch
from torch import nn
from timm.layers import LayerNorm, trunc_normal_
from timm.models.vision_transformer import Block

__all__ = ["build_blocks", "init_transformer_weights", "TimmApiMixin"]


def build_blocks(
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        norm_eps: float = 1e-6,
) -> nn.Sequential:
    """`depth` timm `Block`s (pre-norm LayerNorm) with linearly increasing stochastic depth.

    Raises:
        ValueError: If `embed_dim` is not divisible by `num_heads`.
    """
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
    drop_path_rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
    return nn.Sequential(*[
        Block(
            dim=embed_dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=proj_drop_rate,
            drop_path=rate,
            norm_layer=partial(LayerNorm, eps=norm_eps),
        )
        for rate in drop_path_rates
    ])


def init_transformer_weights(module: nn.Module) -> None:
    """ViT init: truncated-normal (std 0.02) linear and conv weights, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class TimmApiMixin:
    """timm's model API for models with `blocks`, `head`, `embed_dim` and a stem regex.

    Subclasses set `_stem_regex` and `_no_weight_decay` and implement `_make_head(num_classes)`.
    """

    _stem_regex: str = r"^patch_embed|pos_embed|cls_token"
    _no_weight_decay: Tuple[str, ...] = ()
    head: nn.Module
    num_classes: int

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        """Parameter names excluded from weight decay (tokens and learned position embeddings)."""
        names = {name for name, _ in self.named_parameters()}  # type: ignore[attr-defined]
        return {name for name in self._no_weight_decay if name in names}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Union[str, List]]:
        """Parameter groups for layer-wise lr decay, identical to timm's `VisionTransformer` (`coarse` unused)."""
        return dict(stem=self._stem_regex, blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the head with a freshly initialised one for `num_classes` (0: identity)."""
        if global_pool not in (None, "avg", self._global_pool):
            raise ValueError(f"{type(self).__name__} supports global_pool {self._global_pool!r} only, got {global_pool!r}")
        self.num_classes = num_classes
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        self.head = self._make_head(num_classes).to(device)
        self.head.apply(init_transformer_weights)
        self.head.train(self.training)  # type: ignore[attr-defined]
        if hasattr(self, "pretrained_cfg"):
            self.pretrained_cfg["num_classes"] = num_classes

    _global_pool: str = "avg"

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()  # type: ignore[attr-defined]
