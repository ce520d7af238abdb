"""Tolerance for unreadable files: skip them, count them, fail loudly when there are too many.

A dataset that reads files lazily calls :meth:`BadFileTracker.load` instead of loading an
item directly. When an item fails, the failure is logged with its path, the index is
remembered as bad, and the next valid item is returned instead, so one corrupt file never
stops an epoch. When the fraction of known-bad items exceeds ``max_bad_fraction`` a
:class:`TooManyBadFilesError` lists example paths and errors.

Each DataLoader worker holds its own copy of the tracker. The training loader
(``m2pt.train.loader``) sends the failures found in a worker back with each batch and
:meth:`BadFileTracker.merge` adds them to the main process's tracker, so the threshold
applies to the failures of all workers together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

from m2pt.data.errors import TooManyBadFilesError

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")

DEFAULT_MAX_BAD_FRACTION = 0.05


@dataclass
class BadFileTracker:
    """Counts unreadable items of one dataset and substitutes the next valid one.

    Attributes:
        paths: The path (or other name) of every item, used in messages.
        max_bad_fraction: Raise once more than this fraction of all items has failed.
        dataset_name: Name used in warnings and errors.
        errors: Index -> error message of every item that failed so far.
    """

    paths: Sequence[str]
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    dataset_name: str = "dataset"
    errors: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")

    @property
    def num_bad(self) -> int:
        """Number of items that failed to load so far."""
        return len(self.errors)

    @property
    def bad_paths(self) -> list[str]:
        """Paths of the items that failed to load so far."""
        return [self.paths[i] for i in sorted(self.errors)]

    def load(self, index: int, load_item: Callable[[int], ItemT]) -> ItemT:
        """Return ``load_item(index)``, or the next loadable item if that one fails.

        Args:
            index: Index of the requested item.
            load_item: Loads one item by index; any exception marks the item as bad.

        Returns:
            The requested item, or the first valid item after it (wrapping around).

        Raises:
            TooManyBadFilesError: When the fraction of bad items exceeds the threshold, or
                when no item can be loaded at all.
        """
        total = len(self.paths)
        for offset in range(total):
            candidate = (index + offset) % total
            if candidate in self.errors:
                continue
            try:
                return load_item(candidate)
            except Exception as error:  # noqa: BLE001 - any decoder error means a bad file
                self._record(candidate, error)
        raise TooManyBadFilesError(self._summary("none of the items could be loaded"))

    def merge(self, errors: dict[int, str]) -> None:
        """Add failures found by another copy of this tracker (a DataLoader worker's).

        Raises:
            TooManyBadFilesError: When the failures of all copies exceed the threshold.
        """
        self.errors.update({int(i): message for i, message in errors.items() if int(i) not in self.errors})
        self._check_threshold()

    def _record(self, index: int, error: Exception) -> None:
        self.errors[index] = f"{type(error).__name__}: {error}"
        logger.warning(
            "%s: skipping unreadable file %s (%s); %d bad so far",
            self.dataset_name, self.paths[index], self.errors[index], self.num_bad,
        )
        self._check_threshold()

    def _check_threshold(self) -> None:
        if self.num_bad > self.max_bad_fraction * len(self.paths):
            raise TooManyBadFilesError(
                self._summary(
                    f"{self.num_bad} of {len(self.paths)} files failed to load, more than "
                    f"max_bad_fraction={self.max_bad_fraction:g}"
                )
            )

    def _summary(self, headline: str, max_examples: int = 5) -> str:
        examples = "\n".join(
            f"  {self.paths[i]}: {self.errors[i]}" for i in sorted(self.errors)[:max_examples]
        )
        return (
            f"{self.dataset_name}: {headline}. Examples:\n{examples}\n"
            "Fix or remove these files (or re-create the list file without them), or raise "
            "max_bad_fraction if some loss is acceptable."
        )
