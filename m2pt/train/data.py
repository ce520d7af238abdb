"""Datasets and models for a run: modality-specific input pipelines (fbank for audio)."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn
from torch.utils.data import Dataset

from .config import TrainConfig

#: AudioMAE's SpecAugment masks (frequency, time) for AudioSet fine-tuning.
AUDIOMAE_SPEC_AUGMENT = (48, 192)


def audio_transform(model_kwargs: dict[str, Any], spec_augment: Optional[list[int]], train: bool) -> nn.Module:
    """Waveform → normalised fbank [1, T, F] sized for the model (SpecAugment in training only)."""
    from m2pt.models import FbankTransform, SpecAugment

    augment = SpecAugment(*spec_augment) if (spec_augment and train) else None
    transform = FbankTransform(target_length=model_kwargs["target_length"],
                               num_mel_bins=model_kwargs["num_mel_bins"], spec_augment=augment)
    return transform.train(train)


def model_input_kwargs(config: TrainConfig) -> dict[str, Any]:
    """The preset's constructor arguments with the run's overrides."""
    from m2pt.models.presets import preset_kwargs

    return {**preset_kwargs(config.modality, config.preset), **config.model_overrides}


def build_split(config: TrainConfig, split: str) -> Dataset:
    """The train or test dataset of a run (``config.data`` is a path or ``"builtin"``).

    Raises:
        m2pt.data.DatasetError: the path does not exist or is not a dataset.
    """
    from m2pt.data import build_dataset

    from m2pt.data.augment.pipelines import pipeline_options, split_options, wrap_split

    train = split == "train"
    options, wrapper_options = split_options(
        config.modality, {**pipeline_options(config.modality, config.augment, train), **config.data_options}, train)
    spec_augment = config.spec_augment
    if config.augment == "audiomae" and spec_augment is None:
        spec_augment = list(AUDIOMAE_SPEC_AUGMENT)
    if config.modality == "audio" and "transform" not in options:
        options["transform"] = audio_transform(model_input_kwargs(config), spec_augment, train)
    dataset = wrap_split(build_dataset(config.modality, config.data, split, **options), config.modality, train,
                         wrapper_options)
    augmenting = train and (config.augment != "none" or (config.modality == "audio" and spec_augment))
    return CachedDataset(dataset) if config.cache_data and not augmenting else dataset


def build_model(config: TrainConfig, num_classes: int, multi_label: bool = False) -> nn.Module:
    """``create_model`` for the run's modality and preset, with drop path and overrides."""
    from m2pt.models import create_model

    overrides = dict(config.model_overrides)
    if config.drop_path and "drop_path_rate" not in overrides:
        overrides["drop_path_rate"] = config.drop_path
    if config.modality == "audio" and multi_label:
        overrides.setdefault("multi_label", True)
    return create_model(config.modality, config.preset, num_classes=num_classes, **overrides)


class CachedDataset(Dataset):
    """Keeps each item after its first read (for deterministic, costly transforms such as fbank)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["dataset"], name)
