"""Tiny model configurations shared by the model tests (width <= 64, depth <= 2, <= 50 tokens)."""
import torch

from m2pt.models import create_model

TINY = dict(embed_dim=32, depth=2, num_heads=2)
TINY_INPUTS = {
    "image": dict(img_size=28, patch_size=7, in_chans=1),                                # 16 tokens
    "video": dict(num_frames=4, img_size=16, patch_size=8, tubelet_size=2, in_chans=3),  # 8 tokens
    "point": dict(num_points=128, num_groups=16, group_size=8),                          # 16 tokens
    "audio": dict(target_length=64, num_mel_bins=32, patch_size=16),                     # 8 tokens
}


def tiny_model(modality: str, num_classes: int = 5, **overrides) -> torch.nn.Module:
    return create_model(modality, "tiny", num_classes=num_classes, **{**TINY, **TINY_INPUTS[modality], **overrides})


def random_input(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])
