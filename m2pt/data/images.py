"""Images from an ImageFolder tree (``<root>/<split>/<class>/<image>``).

Every image is converted to ``channels`` channels (grey ``L`` or ``RGB``), resized to
``image_size`` x ``image_size`` (bilinear, aspect ratio not kept, as ViT fine-tuning
evaluation at a fixed size expects), turned into a float tensor in [0, 1] and normalised
with ``(x - mean) / std``. Default statistics: ImageNet's for RGB
(mean 0.485/0.456/0.406, std 0.229/0.224/0.225), 0.5/0.5 for grey (maps [0, 1] to [-1, 1]).

With ``augment="mae"`` the split gets MAE's fine-tuning pipeline instead
(:mod:`m2pt.data.augment.images`): random resized crop, flip, RandAugment and random erasing
for ``train``; resize to ``image_size / 0.875`` then centre crop (bicubic) for ``val``/``test``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms

from m2pt.data.augment import check_augment
from m2pt.data.augment.images import mae_test_transform, mae_train_transform
from m2pt.data.base import LabelledDataset
from m2pt.data.errors import DatasetError
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker

PathLike = Union[str, os.PathLike]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.5,)
GREY_STD = (0.5,)

# torchvision's ImageFolder calls "val" what many users call "test", and vice versa.
SPLIT_ALIASES = {"test": ("test", "val"), "val": ("val", "test"), "train": ("train",)}


def default_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the default (mean, std) for ``channels`` (1 or 3)."""
    if channels == 1:
        return GREY_MEAN, GREY_STD
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")


def find_split_folder(root: Path, split: str) -> Path:
    """Return ``root/<split>`` (``test`` and ``val`` stand in for each other).

    Raises:
        DatasetError: When the root or the split folder does not exist.
    """
    if not root.is_dir():
        raise DatasetError(f"image dataset folder {root} does not exist; pass the folder that "
                           "contains train/ and val/ (each with one sub-folder per class)")
    for name in SPLIT_ALIASES.get(split, (split,)):
        if (root / name).is_dir():
            return root / name
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise DatasetError(f"no '{split}' folder in {root} (found: {present or 'nothing'}); the "
                       "ImageFolder layout is <root>/train/<class>/*.png and <root>/val/<class>/*")


# Integer modes whose values are not 8-bit: 16-bit PNG/TIFF ("I;16*"), 32-bit integers ("I").
_WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def load_image(image: Image.Image, channels: int, preprocess: Callable[[Image.Image], torch.Tensor],
               image_size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """An opened image as a normalised ``[channels, image_size, image_size]`` tensor.

    8-bit images go through ``preprocess`` (PIL resize, ``ToTensor``, ``Normalize``). 16-bit
    images are scaled by 65535 (PIL's ``convert("L")`` would clip them at 255), then resized.
    """
    scale = _WIDE_MODES.get(image.mode)
    if scale is None:
        return preprocess(image.convert("L" if channels == 1 else "RGB"))
    values = torch.from_numpy(np.asarray(image, dtype=np.float32) / scale)[None]
    if image.mode == "I" and values.max() > 1.0:  # 32-bit data beyond 16 bits
        values = values * scale / float(np.iinfo(np.int32).max)
    values = transforms.functional.resize(values, [image_size, image_size], antialias=True)
    return transforms.functional.normalize(values.expand(channels, -1, -1), list(mean), list(std))


class ImageFolderDataset(LabelledDataset):
    """Classification images in an ImageFolder tree; returns ``(image [C, H, W], label)``.

    Args:
        root: Folder holding ``train/`` and ``val/`` (or ``test/``) sub-folders.
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: Output height and width.
        channels: 1 (grey) or 3 (RGB).
        mean: Per-channel mean for normalisation; default depends on ``channels``.
        std: Per-channel standard deviation.
        transform: Optional callable applied to the normalised tensor (augmentation).
        augment: ``"none"`` (resize, normalise) or ``"mae"`` (MAE's train / test pipeline).
        max_bad_fraction: Tolerated fraction of unreadable images (see ``BadFileTracker``).
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        image_size: int = 224,
        channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
        augment: str = "none",
    ) -> None:
        try:
            check_augment("image", augment)
        except ValueError as error:
            raise DatasetError(str(error)) from None
        default_mean, default_std = default_statistics(channels)
        self.mean = tuple(mean or default_mean)
        self.std = tuple(std or default_std)
        self.split_root = find_split_folder(Path(root), split)
        try:
            folder = datasets.ImageFolder(str(self.split_root))
        except FileNotFoundError as error:
            raise DatasetError(f"{self.split_root}: {error}. Put images in one sub-folder "
                               "per class, e.g. train/cat/0001.png") from error
        self.classes = list(folder.classes)
        self.samples = list(folder.samples)
        self.targets = [label for _, label in self.samples]
        self.channels = channels
        self.sample_shape = (channels, image_size, image_size)
        self.augment = augment
        if augment == "mae":
            make = mae_train_transform if split == "train" else mae_test_transform
            self.preprocess = make(image_size, self.mean, self.std)
        else:
            self.preprocess = transforms.Compose([
                transforms.Resize((image_size, image_size), antialias=True),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ])
        self.transform = transform
        self.tracker = BadFileTracker([path for path, _ in self.samples], max_bad_fraction,
                                      f"ImageFolderDataset({self.split_root})")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            tensor = load_image(image, self.channels, self.preprocess, self.sample_shape[-1], self.mean, self.std)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, label

    def _repr_details(self) -> str:
        return f"root='{self.split_root}'" + (f", augment='{self.augment}'" if self.augment != "none" else "")
