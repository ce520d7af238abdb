"""Matching a dataset's classes to a model's, by name (never by position alone)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from m2pt.data.errors import DatasetError


class ClassMappedDataset(Dataset):
    """``dataset`` with its targets re-indexed into ``classes`` by class name.

    Args:
        dataset: A dataset with ``classes`` (every name must be in ``classes``).
        classes: The class names in the model's label order.
    """

    def __init__(self, dataset: Dataset, classes: Sequence[str]) -> None:
        self.dataset = dataset
        self.classes = list(classes)
        position = {name: index for index, name in enumerate(self.classes)}
        self.mapping = torch.tensor([position[name] for name in dataset.classes])
        self.multi_label = bool(getattr(dataset, "multi_label", False))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x, y = self.dataset[index]
        if self.multi_label:
            target = torch.zeros(len(self.classes), dtype=y.dtype)
            target[self.mapping] = y
            return x, target
        return x, int(self.mapping[int(y)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["dataset"], name)


def match_classes(dataset: Dataset, classes: Sequence[str], what: str = "the dataset") -> Dataset:
    """``dataset`` with labels in the order of ``classes``, matched by name.

    A dataset may hold fewer classes than the model (a test list without some class), never
    a class the model does not know.

    Raises:
        DatasetError: the dataset has class names that are not in ``classes`` (both are named).
    """
    names = [str(name) for name in dataset.classes]
    if names == list(classes):
        return dataset
    known, spelled = set(classes), folder_spellings(classes)
    unknown = [name for name in names if name not in known and name not in spelled]
    if unknown:
        raise DatasetError(
            f"{what} has classes the model was not trained on: {unknown[:10]}"
            f"{' ...' if len(unknown) > 10 else ''}; the model's classes are {list(classes)[:20]}. "
            "Use data with the model's class names (for a list file, pass --data-option classes=... or fix its labels)"
            + (f"; in folder names write {', '.join(f'{folder!r} for {name!r}' for folder, name in spelled.items())}"
               if spelled else ""))
    if any(name not in known for name in names):
        dataset = _Renamed(dataset, [name if name in known else spelled[name] for name in names])
    return ClassMappedDataset(dataset, classes)


def folder_spellings(classes: Sequence[str]) -> dict[str, str]:
    """Folder-name spellings of class names that cannot be folder names ("T-shirt/top" -> "T-shirt_top").

    Only spellings that name no other class are given, so a match is never ambiguous.
    """
    known, spellings = set(classes), {}
    for name in classes:
        folder = name.replace("/", "_").replace("\\", "_")
        if folder != name and folder not in known:
            spellings[folder] = name
    return spellings


class _Renamed:
    """``dataset`` seen with other class names (same order, same items)."""

    def __init__(self, dataset: Dataset, classes: list[str]) -> None:
        self.dataset = dataset
        self.classes = classes

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["dataset"], name)
