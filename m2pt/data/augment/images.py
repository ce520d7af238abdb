"""MAE's image fine-tuning pipeline on timm (He et al. 2022, ``main_finetune.py``).

Training: ``RandomResizedCrop`` (scale 0.08-1, bicubic), horizontal flip, RandAugment
``rand-m9-mstd0.5-inc1``, normalisation, random erasing (p 0.25, per-pixel noise); batches are
then mixed by :func:`batch_mixup` (mixup 0.8 / cutmix 1.0 in the recipe). Test: resize the
short side to ``image_size / 0.875`` (256 for 224), centre crop ``image_size``, bicubic.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from m2pt.data.augment.timm_fixes import fix_posterize

MAE_RAND_AUGMENT = "rand-m9-mstd0.5-inc1"
MAE_RANDOM_ERASING = 0.25
MAE_TEST_CROP_FRACTION = 224 / 256


def mae_train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                        rand_augment: str = MAE_RAND_AUGMENT, random_erasing: float = MAE_RANDOM_ERASING
                        ) -> Callable[[Any], Any]:
    """PIL image -> augmented, normalised tensor ``[C, image_size, image_size]``."""
    from timm.data import create_transform

    transform = create_transform(input_size=image_size, is_training=True, color_jitter=None,
                                 auto_augment=rand_augment, interpolation="bicubic", re_prob=random_erasing,
                                 re_mode="pixel", re_count=1, mean=tuple(mean), std=tuple(std))
    return fix_posterize(transform)


def mae_test_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable[[Any], Any]:
    """PIL image -> resize ``image_size / 0.875`` -> centre crop ``image_size`` (bicubic) -> normalised tensor."""
    from timm.data import create_transform

    return create_transform(input_size=image_size, is_training=False, interpolation="bicubic",
                            crop_pct=MAE_TEST_CROP_FRACTION, mean=tuple(mean), std=tuple(std))


def batch_mixup(mixup: float, cutmix: float, num_classes: int, label_smoothing: float = 0.0,
                prob: float = 1.0, switch_prob: float = 0.5) -> Optional[Callable[[Any, Any], tuple[Any, Any]]]:
    """timm's ``Mixup`` (per batch, soft targets), or None when both alphas are 0.

    Args:
        mixup: Mixup alpha (Beta distribution), 0 disables it.
        cutmix: CutMix alpha, 0 disables it.
        num_classes: Classes of the one-hot targets.
        label_smoothing: Smoothing folded into the mixed targets.
        prob: Chance that a batch is mixed at all.
        switch_prob: Chance of cutmix instead of mixup when both are enabled.
    """
    if mixup <= 0 and cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=switch_prob, mode="batch",
                 label_smoothing=label_smoothing, num_classes=num_classes)
