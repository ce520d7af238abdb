"""Training-state checkpoints: model, optimizer, position, RNG states; atomic writes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from m2pt.io import atomic_path


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states (CUDA too when present)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, model: nn.Module, optimizer: Optimizer, epoch: int, batch_in_epoch: int,
                        step: int, extra: Optional[dict[str, Any]] = None) -> None:
    """Atomically write everything needed to continue: a failed save keeps the previous file."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "step": step,
        "rng": rng_state(),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(state, file)  # through a Python file: a full disk raises OSError(ENOSPC), not a C++ enforce


def load_training_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_state` (``weights_only=True``: nothing is unpickled)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (mixup/cutmix draw from NumPy, drop path from torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
