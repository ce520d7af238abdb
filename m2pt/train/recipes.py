"""Training recipes: the defaults of each base method in the paper, plus CPU-sized ones.

A recipe is a dict of :class:`~m2pt.train.config.TrainConfig` fields; options given on the
command line or in code override it.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # MAE fine-tuning on ImageNet (He et al.): 100 epochs, batch 1024.
    "image": dict(modality="image", preset="base", epochs=100, batch_size=1024, blr=5e-4, layer_decay=0.65,
                  weight_decay=0.05, drop_path=0.1, mixup=0.8, cutmix=1.0, label_smoothing=0.1,
                  warmup_epochs=5, min_lr=1e-6),
    # VideoMAE fine-tuning on Kinetics-400.
    "video": dict(modality="video", preset="base", epochs=90, batch_size=64, blr=7e-4, layer_decay=0.75,
                  weight_decay=0.05, drop_path=0.1, label_smoothing=0.1, warmup_epochs=5, min_lr=1e-6),
    # AudioMAE fine-tuning on AudioSet (balanced): absolute lr 1e-3, BCE, mAP.
    "audio": dict(modality="audio", preset="base", epochs=60, batch_size=32, lr=1e-3, layer_decay=0.75,
                  weight_decay=5e-4, drop_path=0.1, spec_augment=[48, 192], warmup_epochs=4, min_lr=1e-6),
    # Point-MAE classification fine-tuning.
    "point": dict(modality="point", preset="base", epochs=300, batch_size=32, lr=5e-4, weight_decay=0.05,
                  drop_path=0.1, warmup_epochs=10, min_lr=1e-6),
    # MAE-style pretraining of an auxiliary model.
    "pretrain": dict(task="pretrain", epochs=300, batch_size=256, blr=1.5e-4, weight_decay=0.05,
                     warmup_epochs=20, mask_ratio=0.75, min_lr=0.0),
    # Sized for the built-in data on 2 CPU cores (ENVIRONMENT.md): tiny preset, a few epochs.
    "cpu": dict(preset="tiny", epochs=3, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_epochs=0.5,
                label_smoothing=0.1, drop_path=0.0, min_lr=1e-5),
    "cpu-pretrain": dict(task="pretrain", preset="tiny", epochs=10, batch_size=32, lr=1e-3, weight_decay=0.05,
                         warmup_epochs=1, mask_ratio=0.75, decoder_dim=128, decoder_depth=2, min_lr=1e-5),
}

#: Point-MAE masks 60% of the groups; the other modalities 75% (90% for VideoMAE).
DEFAULT_MASK_RATIO = {"image": 0.75, "video": 0.9, "audio": 0.8, "point": 0.6}


def recipe(name: str) -> dict[str, Any]:
    """A fresh copy of a recipe's options.

    Raises:
        TrainConfigError: unknown recipe name (the message lists the known ones).
    """
    if name not in RECIPES:
        raise TrainConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return dict(RECIPES[name])
