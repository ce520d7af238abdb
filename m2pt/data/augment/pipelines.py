"""Which dataset options and wrappers make up each base method's train and test pipeline."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from m2pt.data.augment import check_augment
from m2pt.data.augment.audio import AUDIOMAE_MIXUP
from m2pt.data.augment.video import VIDEOMAE_REPEATS, VIDEOMAE_TEST_VIEWS


def pipeline_options(modality: str, augment: str, train: bool) -> dict[str, Any]:
    """Dataset constructor options of the ``augment`` pipeline for the train or test split.

    The user's own ``data_options`` are applied over these (so ``test_clips=2`` or
    ``mixup=0.3`` replace the base method's values).
    """
    check_augment(modality, augment)
    if augment == "none":
        return {}
    if modality == "image":
        return {"augment": "mae"}
    if modality == "video":
        if train:
            return {"augment": "videomae", "temporal_sampling": "random", "repeats": VIDEOMAE_REPEATS}
        clips, crops = VIDEOMAE_TEST_VIEWS
        return {"test_clips": clips, "test_crops": crops}
    if modality == "audio":
        return {"roll": True, "mixup": AUDIOMAE_MIXUP} if train else {}
    if train:  # point
        from m2pt.data.augment.points import ScaleAndTranslate

        return {"transform": ScaleAndTranslate()}
    return {}


#: Options of the test split only (the training split ignores them).
TEST_ONLY_OPTIONS = ("test_clips", "test_crops", "test_votes")
#: Options of the training split only.
TRAIN_ONLY_OPTIONS = ("repeats",)


def split_options(modality: str, options: dict[str, Any], train: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dataset's own options for a split, and those m2pt applies around it (``test_votes``).

    ``data_options`` are shared by both splits; the test-time views (``test_clips``,
    ``test_crops``, ``test_votes``) only reach the test split, ``repeats`` the training split.
    """
    wrapper_keys = ("test_votes",) if modality == "point" else ()
    other_split = TEST_ONLY_OPTIONS if train else TRAIN_ONLY_OPTIONS
    own = {k: v for k, v in options.items() if k not in wrapper_keys and k not in other_split}
    return own, {k: options[k] for k in wrapper_keys if k in options and not train}


def wrap_split(dataset: Dataset, modality: str, train: bool, wrapper_options: dict[str, Any]) -> Dataset:
    """Test-time voting for point clouds (``test_votes`` > 1, Point-MAE); other splits unchanged."""
    votes = int(wrapper_options.get("test_votes", 1))
    if modality == "point" and not train and votes > 1:
        from m2pt.data.augment.points import VotedPoints

        return VotedPoints(dataset, votes)
    return dataset
