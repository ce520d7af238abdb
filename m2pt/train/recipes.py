"""Training recipes: the fine-tuning settings of each base method in the paper, plus CPU-sized ones.

A recipe is a dict of :class:`~m2pt.train.config.TrainConfig` fields; options given on the
command line, in a ``--config`` file or in code override it. Paper recipes state the *global*
batch (``global_batch_size``) and the base lr (``blr``, scaled by global batch / 256); the
per-process micro-batch (``batch_size``, a memory limit) and gradient accumulation follow from
the number of processes (:func:`~m2pt.train.config.resolve_for_world`), so a recipe means the
same thing on 1 GPU and under ``torchrun --nproc_per_node=8``. The README's recipe table gives
the upstream file each value comes from.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfigError

RECIPES: dict[str, dict[str, Any]] = {
    # MAE fine-tuning on ImageNet (He et al., FINETUNE.md, ViT-B): global batch 1024, fp16 autocast.
    "image": dict(modality="image", augment="mae", preset="base", epochs=100, global_batch_size=1024,
                  batch_size=128, blr=5e-4, layer_decay=0.65, weight_decay=0.05, drop_path=0.1, mixup=0.8, cutmix=1.0,
                  label_smoothing=0.1,
                  warmup_epochs=5, min_lr=1e-6, amp_dtype="fp16"),
    # The paper's "fix acc": MAE's linear probe (main_linprobe.py), with only λ and the head trained.
    "image-linprobe": dict(modality="image", preset="base", epochs=90, global_batch_size=16384, batch_size=512,
                           blr=0.1, weight_decay=0.0, optimizer="lars", linear_probe=True, warmup_epochs=10,
                           min_lr=0.0, layer_decay=None, drop_path=0.0, mixup=0.0, cutmix=0.0, label_smoothing=0.0,
                           model_overrides={"global_pool": "token"}, amp_dtype="fp16",
                           pathway={"train_target": False, "train_aux": False}),
    # VideoMAE fine-tuning on Kinetics-400 (the paper's 90 epochs and blr 7e-4; VideoMAE's global batch 384).
    "video": dict(modality="video", augment="videomae", preset="base", epochs=90, global_batch_size=384,
                  batch_size=24, blr=7e-4, layer_decay=0.75, weight_decay=0.05, drop_path=0.1, label_smoothing=0.1,
                  mixup=0.8, cutmix=1.0, warmup_epochs=5,
                  min_lr=1e-6, amp_dtype="fp16"),
    # AudioMAE fine-tuning on AudioSet-20K (ft_as.sh): blr 1e-3 at global batch 32, BCE, mAP.
    "audio": dict(modality="audio", augment="audiomae", preset="base", epochs=60, global_batch_size=32,
                  batch_size=32, blr=1e-3, layer_decay=0.75, weight_decay=5e-4, drop_path=0.1, spec_augment=[48, 192],
                  warmup_epochs=4,
                  min_lr=1e-6, amp_dtype="fp16"),
    # Point-MAE classification fine-tuning (cfgs/finetune_modelnet.yaml): absolute lr, clipping at 10,
    # float32 (tools/runner_finetune.py has no autocast).
    "point": dict(modality="point", augment="pointmae", preset="base", epochs=300, global_batch_size=32,
                  batch_size=32, lr=5e-4, weight_decay=0.05, drop_path=0.1, warmup_epochs=10, min_lr=1e-6,
                  clip_grad=10.0, amp=False),
    # MAE-style pretraining of an auxiliary model (MAE PRETRAIN.md: global batch 4096, blr 1.5e-4; the
    # paper's auxiliaries are compared at 20-300 epochs).
    "pretrain": dict(task="pretrain", epochs=300, global_batch_size=4096, batch_size=256, blr=1.5e-4,
                     weight_decay=0.05, warmup_epochs=20, mask_ratio=0.75, min_lr=0.0, amp_dtype="fp16"),
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
    return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
            for k, v in RECIPES[name].items()}
