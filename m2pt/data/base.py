"""Shared behaviour of every classification dataset: class names, counts, a readable repr."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset


class LabelledDataset(Dataset):
    """Base class: subclasses set ``classes``, ``targets`` and ``sample_shape``.

    Attributes:
        classes: Class names; the label of an item is an index into this list.
        targets: Per item, the class index (single-label) or the list of class indices
            (multi-label). Used for counts, stratification and class weights.
        multi_label: Whether the target is a multi-hot float vector instead of an index.
        sample_shape: The fixed shape of every input tensor, so default collation works.
    """

    classes: list[str]
    targets: Sequence[Any]
    multi_label: bool = False
    sample_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        """Return the number of items per class name (multi-label items count once per label)."""
        counts: Counter[int] = Counter()
        for target in self.targets:
            counts.update(target if self.multi_label else [target])
        return {name: counts.get(index, 0) for index, name in enumerate(self.classes)}

    def describe(self) -> str:
        """Return a multi-line summary: size, input shape, items per class."""
        counts = self.class_counts()
        width = max((len(name) for name in counts), default=0)
        lines = [repr(self)] + [f"  {name:<{width}}  {count}" for name, count in counts.items()]
        return "\n".join(lines)

    def _repr_details(self) -> str:
        return ""

    def __repr__(self) -> str:
        details = self._repr_details()
        return (
            f"{type(self).__name__}(items={len(self)}, classes={self.num_classes}, "
            f"sample_shape={tuple(self.sample_shape)}, multi_label={self.multi_label}"
            + (f", {details}" if details else "")
            + ")"
        )


def class_names(value: str | Sequence[str]) -> list[str]:
    """Class names from a list, or from one comma-separated string (``--data-option classes=a,b,c``)."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    else:
        names = [str(name).strip() for name in value]
    if not names or any(not name for name in names):
        raise ValueError(f"classes must be non-empty names, e.g. 'cat,dog' or ['cat', 'dog']; got {value!r}")
    return names


def multi_hot(indices: Sequence[int], num_classes: int) -> torch.Tensor:
    """Return a float vector of length ``num_classes`` with ones at ``indices``."""
    target = torch.zeros(num_classes, dtype=torch.float32)
    target[list(indices)] = 1.0
    return target
