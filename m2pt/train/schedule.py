"""Per-step learning rate: linear warm-up, then cosine decay to ``min_lr``."""

from __future__ import annotations

import math

from torch.optim import Optimizer


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """The learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * lr_scale`` (layer decay and λ multiplier live in ``lr_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
