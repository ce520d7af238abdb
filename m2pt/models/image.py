"""Image model: a plain timm `VisionTransformer` (MAE fine-tuning layout: GAP + fc_norm).

The model is deliberately not a subclass, so a merged M2PT image model is an ordinary timm model
that loads into `timm.create_model(...)` with `strict=True`. Input checks are attached as a
forward pre-hook (`ImageInputCheck`), which is not part of the state dict.
"""
from typing import Optional, Union

from timm.models.vision_transformer import VisionTransformer

from .input_checks import ImageInputCheck

__all__ = ["create_image_model"]

# timm entry points whose defaults the recorded arguments override (all of them, so any ViT entry
# point would do; the one of the same width names the model most honestly).
_TIMM_ARCHITECTURES = {192: "vit_tiny_patch16_224", 384: "vit_small_patch16_224", 768: "vit_base_patch16_224",
                       1024: "vit_large_patch16_224"}


def create_image_model(
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        global_pool: str = "avg",
        fc_norm: Optional[bool] = None,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        check_inputs: bool = True,
) -> VisionTransformer:
    """Build a timm ViT for images with a cls token and a learned position embedding.

    Args:
        img_size: Square input side.
        patch_size: Square patch side.
        in_chans: Input channels.
        num_classes: Classes of the head (0: no head).
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: Bias in the fused qkv projection.
        global_pool: timm pooling ("avg" as in MAE fine-tuning, or "token").
        fc_norm: Norm after pooling; None lets timm decide (on for "avg").
        drop_rate: Dropout before the head.
        drop_path_rate: Stochastic depth, increasing linearly to this rate.
        check_inputs: Attach the input-validation pre-hook.

    Returns:
        A `timm.models.vision_transformer.VisionTransformer`.
    """
    timm_args = dict(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        global_pool=global_pool,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        class_token=True,
        pos_embed="learn",
        fc_norm=fc_norm,
    )
    model = VisionTransformer(**timm_args, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    # What timm.create_model records for its own models: the export rebuilds the model in plain timm
    # as timm.create_model(architecture, **model._model_args).
    model._model_args = timm_args
    input_size = (in_chans, img_size, img_size)
    model.pretrained_cfg = dict(
        architecture=_TIMM_ARCHITECTURES.get(embed_dim, "vit_base_patch16_224"),
        input_size=input_size,
        num_classes=num_classes,
        first_conv="patch_embed.proj",
        classifier="head",
    )
    model.default_cfg = model.pretrained_cfg
    if check_inputs:
        model.register_forward_pre_hook(ImageInputCheck(input_size))
    return model
