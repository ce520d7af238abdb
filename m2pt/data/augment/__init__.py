"""The base methods' input pipelines, train and test, built on the libraries made for them.

========  ============  ============================================================================
modality  ``augment``   pipeline
========  ============  ============================================================================
image     ``"mae"``     MAE fine-tuning: timm ``create_transform`` (RandomResizedCrop, flip,
                        RandAugment ``rand-m9-mstd0.5-inc1``, random erasing 0.25), test resize
                        256 → centre crop 224 (bicubic); mixup / cutmix per batch (timm ``Mixup``)
video     ``"videomae"``  VideoMAE: one RandAugment / random resized crop / flip for all frames of
                        a clip, random erasing; test on clips × crops views (softmax averaged)
audio     ``"audiomae"``  AudioMAE: waveform mixup and time roll, SpecAugment, AudioSet normalisation
point     ``"pointmae"``  Point-MAE: random scale and translate; optional test voting
any       ``"none"``    Resize and normalise only (the CPU profile)
========  ============  ============================================================================

Every random choice is drawn from the process-global generators, which the loaders seed per
item (:mod:`m2pt.data.seeding`), so results do not depend on the number of loader workers.
"""

from __future__ import annotations

AUGMENTS: dict[str, tuple[str, ...]] = {
    "image": ("none", "mae"),
    "video": ("none", "videomae"),
    "audio": ("none", "audiomae"),
    "point": ("none", "pointmae"),
}


def check_augment(modality: str, augment: str) -> None:
    """Raise ``ValueError`` unless ``augment`` is a pipeline of ``modality``."""
    known = AUGMENTS.get(modality, ("none",))
    if augment not in known:
        raise ValueError(f"augment={augment!r} is not a {modality} pipeline; choose one of {list(known)}")
