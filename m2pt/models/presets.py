"""Size and input presets of the four modality models.

A preset is a width/depth/heads triple plus the input geometry of its modality. `base` is the paper's
ViT-B with the paper's inputs; `small` and `tiny` use inputs small enough to train on a CPU:

| modality | base | small / tiny |
|---|---|---|
| image | 3x224x224, patch 16 | 1x28x28 (Fashion-MNIST), patch 7 -> 16 tokens |
| video | 3x16x224x224, tubelet 2x16x16 | 3x8x32x32 (moving digits, grey replicated to RGB), tubelet 2x8x8 -> 64 tokens |
| point | 1024 points -> 64 groups x 32 | same |
| audio | 1024 frames x 128 mel bins, patch 16 | 96 frames (1 s at 16 kHz) x 128 mel bins, patch 16 -> 48 tokens |
"""
from typing import Any, Dict

__all__ = ["MODALITIES", "PRESETS", "SIZE_PRESETS", "INPUT_PRESETS", "preset_kwargs"]

MODALITIES = ("image", "video", "point", "audio")

SIZE_PRESETS: Dict[str, Dict[str, int]] = {
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "small": dict(embed_dim=384, depth=6, num_heads=6),
    "tiny": dict(embed_dim=192, depth=6, num_heads=3),
}
PRESETS = tuple(SIZE_PRESETS)

_PAPER_INPUTS: Dict[str, Dict[str, Any]] = {
    "image": dict(img_size=224, patch_size=16, in_chans=3),
    "video": dict(num_frames=16, img_size=224, patch_size=16, tubelet_size=2, in_chans=3),
    "point": dict(num_points=1024, num_groups=64, group_size=32),
    "audio": dict(target_length=1024, num_mel_bins=128, patch_size=16),
}
_CPU_INPUTS: Dict[str, Dict[str, Any]] = {
    "image": dict(img_size=28, patch_size=7, in_chans=1),
    "video": dict(num_frames=8, img_size=32, patch_size=8, tubelet_size=2, in_chans=3),
    "point": dict(num_points=1024, num_groups=64, group_size=32),
    "audio": dict(target_length=96, num_mel_bins=128, patch_size=16),
}
#: Where a base method's own model differs from the size preset: Point-MAE uses 6 heads
#: (cfgs/finetune_modelnet.yaml, cfgs/pretrain.yaml), for the target and for point auxiliaries.
_METHOD_SIZES: Dict[str, Dict[str, Dict[str, Any]]] = {"point": {"base": dict(num_heads=6)}}
INPUT_PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    modality: {"base": _PAPER_INPUTS[modality], "small": _CPU_INPUTS[modality], "tiny": _CPU_INPUTS[modality]}
    for modality in MODALITIES
}


def preset_kwargs(modality: str, preset: str) -> Dict[str, Any]:
    """Constructor arguments of a preset (a fresh dict).

    Args:
        modality: One of `MODALITIES`.
        preset: One of `PRESETS`.

    Raises:
        ValueError: Unknown modality or preset, listing the valid ones.
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; valid modalities: {', '.join(MODALITIES)}")
    if preset not in SIZE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return {**SIZE_PRESETS[preset], **_METHOD_SIZES.get(modality, {}).get(preset, {}),
            **INPUT_PRESETS[modality][preset]}
