"""Test data is matched to a model's classes by name, folder-safe spellings included."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from m2pt.data.class_map import folder_spellings, match_classes
from m2pt.data.errors import DatasetError

FASHION = ["T-shirt/top", "Trouser", "Pullover"]


class Labelled(Dataset):
    def __init__(self, classes: list[str], labels: list[int]) -> None:
        self.classes, self.labels = classes, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.tensor(float(index)), self.labels[index]


def test_labels_follow_the_model_order_by_name():
    data = match_classes(Labelled(["Trouser", "T-shirt/top"], [0, 1, 1]), FASHION)
    assert [data[i][1] for i in range(3)] == [1, 0, 0]


def test_a_folder_safe_spelling_matches_a_class_with_a_slash():
    """'T-shirt/top' cannot name an ImageFolder class folder; 'T-shirt_top' stands for it."""
    data = match_classes(Labelled(["Pullover", "T-shirt_top"], [1, 0]), FASHION)
    assert [data[i][1] for i in range(2)] == [0, 2] and data.dataset.classes == ["Pullover", "T-shirt/top"]


def test_a_spelling_that_names_another_class_is_not_an_alias():
    assert folder_spellings(["a/b", "a_b"]) == {}
    assert folder_spellings(FASHION) == {"T-shirt_top": "T-shirt/top"}


def test_unknown_classes_are_refused_naming_the_folder_spelling():
    with pytest.raises(DatasetError, match=r"not trained on: \['Sandal'\].*write 'T-shirt_top' for 'T-shirt/top'"):
        match_classes(Labelled(["Sandal", "Trouser"], [0, 1]), FASHION)
