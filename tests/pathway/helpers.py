"""Small models and utilities shared by the pathway tests."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from m2pt.pathway import Pathway

VIT_KWARGS = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def tiny_vit(seed: int = 0, **overrides) -> VisionTransformer:
    """A 2-block, width-32 timm ViT on 16×16 images (17 tokens)."""
    torch.manual_seed(seed)
    return VisionTransformer(**{**VIT_KWARGS, **overrides})


def randomize_pathways(model: nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Give every pathway a random non-zero λ and a random W' (so equivalence is not trivial)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Pathway):
                module.scale.copy_(scale * (torch.rand(module.scale.shape, generator=generator) + 0.5))
                module.aux_weight.copy_(torch.randn(module.aux_weight.shape, generator=generator) * 0.2)


def images(batch: int = 4, seed: int = 1, size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))
