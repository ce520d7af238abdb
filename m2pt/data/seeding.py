"""Random choices that depend only on a key, never on which process or worker makes them.

Augmentation libraries (timm, torchvision) draw from the process-global Python, NumPy and
torch generators. :func:`seeded_rngs` seeds all three from a key such as
``(seed, epoch, item index)`` for the duration of one call and restores them afterwards, so

* an augmented item is the same in the main process and in any DataLoader worker, whatever
  the number of workers and whatever was loaded before it;
* loading in the main process leaves the training RNG (dropout, drop path) untouched.

Only the CPU torch generator is touched (``torch.manual_seed`` would also re-seed CUDA).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

#: Separate streams for the independent uses of one key.
ITEM_STREAM, BATCH_STREAM, VIEW_STREAM = 0, 1, 2


def derived_seed(*key: int) -> int:
    """A 63-bit seed mixed from non-negative integers (NumPy's ``SeedSequence``)."""
    low, high = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return (int(high) << 31) ^ int(low)


def capture_rng_states() -> tuple[Any, Any, torch.Tensor]:
    """The current Python, NumPy and CPU torch generator states."""
    return random.getstate(), np.random.get_state(), torch.random.default_generator.get_state()


def restore_rng_states(states: tuple[Any, Any, torch.Tensor]) -> None:
    """Put back states from :func:`capture_rng_states`."""
    python_state, numpy_state, torch_state = states
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.random.default_generator.set_state(torch_state)


def seed_rngs(seed: int) -> None:
    """Seed the Python, NumPy and CPU torch generators from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.random.default_generator.manual_seed(seed)


@contextmanager
def preserved_rngs(enabled: bool = True) -> Iterator[None]:
    """Put the global generators back as they were when the body ends (skipped when not ``enabled``)."""
    saved = capture_rng_states() if enabled else None
    try:
        yield
    finally:
        if saved is not None:
            restore_rng_states(saved)


@contextmanager
def seeded_rngs(seed: int, restore: bool = True) -> Iterator[None]:
    """Run the body with the global generators seeded from ``seed``; restore them afterwards.

    Args:
        seed: The seed.
        restore: Put the previous states back (about 0.1 ms); a process whose generators serve
            nothing else, such as a DataLoader worker, may skip it.
    """
    with preserved_rngs(restore):
        seed_rngs(seed)
        yield
