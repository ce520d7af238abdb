"""How far λ can move: the sum of the learning rates each pathway scale sees over a run.

With AdamW, a parameter moves by at most about ``lr`` per step, so ``Σ_t lr_t · lr_scale`` bounds
how far λ can travel from its initial 1e-4 (:func:`lambda_lr_sums`). ``lr_scale`` is that of λ's
parameter group (:func:`m2pt.pathway.param_groups`): layer decay ``d ** (depth - i)`` for block
``i`` (0-based) times ``PathwayConfig.scale_lr_mult``. A budget in which that sum is far below 1
cannot tell whether λ would engage.

The bound is AdamW's. Under LARS (the fix-acc linear probe, :func:`m2pt.train.loop.build_optimizer`)
λ has no weight decay and no trust ratio, so it gets plain SGD with momentum 0.9: a step is
``lr_t · v_t`` with ``v_t`` tending to ``g / (1 - 0.9) = 10 g`` under a steady gradient ``g``, so
λ moves by about ``10 · g · Σ_t lr_t · lr_scale``. The same sum is reported, but for SGD it is a
reach in units of ``10 g`` rather than an absolute bound: ``Σ ≥ 1`` means λ can move by its
gradient's size times 10, which says nothing absolute when the gradient on λ is tiny.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from m2pt.train.schedule import lr_at


def schedule_lr_sum(total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """``Σ_t lr_t`` of m2pt's schedule (linear warm-up, cosine to ``min_lr``; :func:`lr_at`)."""
    return sum(lr_at(step, total_steps, warmup_steps, base_lr, min_lr) for step in range(total_steps))


def lambda_lr_scales(depth: int, layer_decay: Optional[float] = None, scale_lr_mult: float = 1.0) -> list[float]:
    """``lr_scale`` of λ in each block (index 0 = first block), as :func:`m2pt.pathway.param_groups` sets it."""
    decay = 1.0 if layer_decay is None else layer_decay
    return [decay ** (depth - block) * scale_lr_mult for block in range(depth)]


def base_lr_of(options: dict[str, Any], world_size: int = 1) -> float:
    """``lr`` if set, else ``blr × global batch / 256`` (the MAE convention, as the trainer)."""
    if options.get("lr") is not None:
        return float(options["lr"])
    return float(options.get("blr", 5e-4)) * options["batch_size"] * options.get("accum_steps", 1) * world_size / 256


def steps_per_epoch(train_items: int, batch_size: int, accum_steps: int = 1, world_size: int = 1,
                    max_train_batches: Optional[int] = None) -> int:
    """Optimiser steps per epoch, as the trainer counts them (last partial batch dropped)."""
    batches = (train_items // world_size) // batch_size
    if max_train_batches is not None:
        batches = min(batches, max_train_batches)
    return batches // accum_steps


def lambda_lr_sums(options: dict[str, Any], pathway: Optional[dict[str, Any]] = None, depth: Optional[int] = None,
                   train_items: Optional[int] = None, world_size: int = 1) -> list[float]:
    """``Σ_t lr_t · lr_scale`` of λ in every block of a run with these ``TrainConfig`` options.

    Args:
        options: ``TrainConfig`` options (``epochs``, ``batch_size``, ``lr`` / ``blr``,
            ``warmup_epochs``, ``min_lr``, ``layer_decay``, ``preset``, ``data_options``).
        pathway: The arm's ``PathwayConfig`` fields (``scale_lr_mult``; a fixed λ sums to 0).
        depth: Blocks of the target (default: the preset's).
        train_items: Training items (default ``data_options["train_size"]``).
        world_size: Processes of a distributed run (each sees ``1 / world_size`` of the data).

    Returns:
        One sum per block, block 0 first.
    """
    from m2pt.models.presets import SIZE_PRESETS

    pathway = pathway or {}
    if depth is None:
        depth = int(options.get("model_overrides", {}).get("depth", SIZE_PRESETS[options["preset"]]["depth"]))
    if train_items is None:
        train_items = int(options["data_options"]["train_size"])
    per_epoch = steps_per_epoch(train_items, options["batch_size"], options.get("accum_steps", 1), world_size,
                                options.get("max_train_batches"))
    total = per_epoch * int(options["epochs"])
    warmup = int(round(float(options.get("warmup_epochs", 0.0)) * per_epoch))
    total_lr = schedule_lr_sum(total, warmup, base_lr_of(options, world_size), float(options.get("min_lr", 0.0)))
    if pathway.get("train_scale", True) is False:
        return [0.0] * depth
    scales = lambda_lr_scales(depth, options.get("layer_decay"), float(pathway.get("scale_lr_mult", 1.0)))
    return [total_lr * scale for scale in scales]


def describe_sums(sums: Sequence[float]) -> str:
    """``"1.23"`` when every block has the same sum, else ``"0.71 (block 0) .. 81 (last), mean 19"``."""
    if not sums:
        return "–"
    if max(sums) - min(sums) <= 1e-9 * max(1.0, max(sums)):
        return f"{sums[0]:.3g}"
    return f"{sums[0]:.3g} (block 0) .. {sums[-1]:.3g} (block {len(sums) - 1}), mean {sum(sums) / len(sums):.3g}"
