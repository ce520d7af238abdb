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


# Dataset option -> the model argument it must equal, per modality (data on disk only).
_INPUT_OPTIONS = {"image": {"image_size": "img_size", "channels": "in_chans"},
                  "video": {"image_size": "img_size", "num_frames": "num_frames"},
                  "point": {"num_points": "num_points"}}


def input_options_for_model(config: TrainConfig) -> dict[str, Any]:
    """Dataset options that size a user's data on disk for the model (image size, channels, frames, points)."""
    if config.data == "builtin":
        return {}
    model = model_input_kwargs(config)
    return {option: model[arg] for option, arg in _INPUT_OPTIONS.get(config.modality, {}).items() if arg in model}


def check_input_options(config: TrainConfig, options: dict[str, Any]) -> None:
    """Refuse data options that would give inputs of another size than the model takes.

    Raises:
        TrainConfigError: naming the data option, the model argument and how to make them agree.
    """
    from .config import TrainConfigError

    model = model_input_kwargs(config)
    for option, arg in _INPUT_OPTIONS.get(config.modality, {}).items():
        if option in options and arg in model and options[option] != model[arg]:
            raise TrainConfigError(
                f"--data-option {option}={options[option]!r} gives inputs the {config.modality} model does not take "
                f"({arg}={model[arg]!r} for preset {config.preset!r}); drop the data option (the data is then sized "
                f"for the model) or also pass --model-override {arg}={options[option]!r}")


def build_split(config: TrainConfig, split: str) -> Dataset:
    """The train or test dataset of a run (``config.data`` is a path or ``"builtin"``).

    Raises:
        m2pt.data.DatasetError: the path does not exist or is not a dataset.
    """
    from m2pt.data import build_dataset

    from m2pt.data.augment.pipelines import pipeline_options, split_options, wrap_split

    train = split == "train"
    options = {**input_options_for_model(config), **pipeline_options(config.modality, config.augment, train),
               **config.data_options}
    check_input_options(config, options)
    options, wrapper_options = split_options(config.modality, options, train)
    spec_augment = config.spec_augment
    if config.augment == "audiomae" and spec_augment is None:
        spec_augment = list(AUDIOMAE_SPEC_AUGMENT)
    if config.modality == "audio" and "transform" not in options:
        options["transform"] = audio_transform(model_input_kwargs(config), spec_augment, train)
    data = config.test_data if not train and config.test_data else config.data
    dataset = wrap_split(build_dataset(config.modality, data, split, **options), config.modality, train,
                         wrapper_options)
    augmenting = train and (config.augment != "none" or (config.modality == "audio" and spec_augment))
    return CachedDataset(dataset) if config.cache_data and not augmenting else dataset


def check_separate_test_data(config: TrainConfig) -> None:
    """Refuse a run whose training data is one list file and whose test set would be that same file.

    A folder holds ``train`` and ``test`` lists (or ImageFolder splits); a single file (an audio
    CSV/JSON, a video list, a ScanObjectNN ``.h5``) has no test split of its own.

    Raises:
        TrainConfigError: ``data`` is a file and ``test_data`` is unset or the same file.
    """
    from pathlib import Path

    from .config import TrainConfigError

    if config.data == "builtin" or not Path(config.data).expanduser().is_file():
        return
    if config.test_data is None:
        raise TrainConfigError(
            f"--data {config.data} is a single list file: it would be both the training and the test set, and the "
            "test metrics would be training metrics. Pass the test list with --test-data, or a folder holding "
            "train.csv/test.csv (train.txt/test.txt for video; *training*.h5/*test*.h5 for ScanObjectNN)")
    if Path(config.test_data).expanduser().resolve() == Path(config.data).expanduser().resolve():
        raise TrainConfigError(f"--test-data is the same file as --data ({config.data}); pass a separate test list")


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
