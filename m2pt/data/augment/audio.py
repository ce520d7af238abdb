"""AudioMAE's waveform augmentation (Huang et al. 2022, ``dataset.py``).

* time roll and gain: the waveform is rolled by a random number of samples and scaled by
  ``Beta(10, 10) + 0.5``;
* mixup: with probability ``mixup`` a second random clip of the dataset is mixed in,
  ``lam * a + (1 - lam) * b`` with ``lam ~ Beta(10, 10)``, and the targets likewise.

SpecAugment and the AudioSet normalisation are in :class:`m2pt.models.FbankTransform`.
Both draw from the global generators, which the loaders seed per item.
"""

from __future__ import annotations

import numpy as np

AUDIOMAE_MIXUP = 0.5
MIX_BETA = 10.0


def roll_and_gain(waveform: np.ndarray) -> np.ndarray:
    """Roll ``waveform`` by a random shift and scale it by ``Beta(10, 10) + 0.5``."""
    shift = np.random.randint(len(waveform))
    gain = np.random.beta(MIX_BETA, MIX_BETA) + 0.5
    return (np.roll(waveform, shift) * gain).astype(np.float32, copy=False)


def mix_weight() -> float:
    """The weight ``lam ~ Beta(10, 10)`` of the first clip in a waveform mixup."""
    return float(np.random.beta(MIX_BETA, MIX_BETA))
