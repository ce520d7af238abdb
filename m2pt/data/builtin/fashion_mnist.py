"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (no download).

A stratified, seeded subset (``train_size`` / ``test_size`` images, equal counts per class
up to a remainder of one) is written once as ``.npy`` arrays into the data cache. Images are
28x28 grey, optionally zero-padded and resized, and normalised with the statistics of the
full Fashion-MNIST training set: mean 0.2860, std 0.3530.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from m2pt.data.augment import check_augment
from m2pt.data.base import LabelledDataset
from m2pt.data.builtin.idx import read_idx
from m2pt.data.cache import PathLike, data_root, generating_folder
from m2pt.data.errors import DatasetError, MissingSystemPackageError

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530
DEBIAN_PACKAGE = "dataset-fashion-mnist"
KNOWN_FOLDERS = (Path("/usr/share/datasets/fashion-mnist"),)
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _dpkg_listed_folders() -> list[Path]:
    if shutil.which("dpkg") is None:
        return []
    result = subprocess.run(["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True)
    return sorted({Path(line).parent for line in result.stdout.splitlines()
                   if "idx3-ubyte" in line})


def find_fashion_mnist_folder(folder: PathLike | None = None) -> Path:
    """Return the folder holding the four Fashion-MNIST IDX files.

    Args:
        folder: Explicit folder to use instead of the Debian package's.

    Raises:
        MissingSystemPackageError: When no folder with the files is found.
    """
    candidates = [Path(folder)] if folder is not None else [*KNOWN_FOLDERS, *_dpkg_listed_folders()]
    for candidate in candidates:
        if all(idx_file(candidate, stem) is not None
               for stems in IDX_STEMS.values() for stem in stems):
            return candidate
    raise MissingSystemPackageError(
        f"Fashion-MNIST IDX files not found (looked in {[str(c) for c in candidates]}). "
        f"Install them with: sudo apt-get install {DEBIAN_PACKAGE}")


def idx_file(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem.gz`` or ``folder/stem``, whichever exists, else ``None``."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Return sorted indices of a seeded subset with (nearly) equal counts per class.

    Args:
        labels: Class index of every item.
        size: Number of items to keep; ``None`` keeps all.
        seed: Seed of the per-class shuffles.
    """
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, per_class)]
    return np.sort(np.concatenate(chosen))


def generate_fashion_mnist(destination: Path, train_size: int | None, test_size: int | None,
                           seed: int, source_folder: PathLike | None = None) -> None:
    """Write the stratified subsets as ``<split>_images.npy`` / ``<split>_labels.npy``."""
    source = find_fashion_mnist_folder(source_folder)
    sizes = {"train": train_size, "test": test_size}
    for split in tqdm(("train", "test"), desc="Fashion-MNIST subset", unit="split"):
        image_stem, label_stem = IDX_STEMS[split]
        images = read_idx(idx_file(source, image_stem))
        labels = read_idx(idx_file(source, label_stem)).astype(np.int64)
        keep = stratified_subset(labels, sizes[split], seed)
        np.save(destination / f"{split}_images.npy", images[keep])
        np.save(destination / f"{split}_labels.npy", labels[keep])
    (destination / "meta.json").write_text(json.dumps(
        {"source": str(source), "seed": seed, "train_size": train_size, "test_size": test_size,
         "classes": FASHION_MNIST_CLASSES}, indent=2))


class FashionMNISTDataset(LabelledDataset):
    """A seeded stratified Fashion-MNIST subset; returns ``(image [C, H, W], label)``.

    Args:
        split: ``"train"`` or ``"test"`` (``"val"`` means ``"test"``).
        root: Data cache folder (default ``$M2PT_DATA`` or ``~/.cache/m2pt/data``).
        seed: Seed of the subset choice.
        train_size: Training images kept (``None``: all 60,000).
        test_size: Test images kept (``None``: all 10,000).
        image_size: Output size after padding (resized bilinearly if it differs).
        padding: Zero pixels added on each side of the 28x28 image before resizing.
        channels: 1, or 3 to repeat the grey channel for RGB models.
        transform: Optional callable applied to the normalised tensor.
        source_folder: Folder with the IDX files, if not the Debian package's.
        augment: ``"none"``, or ``"mae"`` for MAE's train / test pipeline (``m2pt.data.augment.images``)
            on the padded image.
    """

    def __init__(self, split: str = "train", root: PathLike | None = None, seed: int = 0,
                 train_size: int | None = 12000, test_size: int | None = 2000,
                 image_size: int = 28, padding: int = 0, channels: int = 1,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 source_folder: PathLike | None = None, augment: str = "none") -> None:
        try:
            check_augment("image", augment)
        except ValueError as error:
            raise DatasetError(str(error)) from None
        split = {"val": "test"}.get(split, split)
        if split not in IDX_STEMS:
            raise DatasetError(f"split must be 'train' or 'test', got '{split}'")
        if channels not in (1, 3):
            raise DatasetError(f"channels must be 1 or 3, got {channels}")
        self.folder = data_root(root) / "fashion_mnist" / f"train{train_size}_test{test_size}_seed{seed}"
        if not self.folder.is_dir():
            with generating_folder(self.folder) as tmp:
                generate_fashion_mnist(tmp, train_size, test_size, seed, source_folder)
        self.images = torch.from_numpy(np.load(self.folder / f"{split}_images.npy"))
        self.targets = np.load(self.folder / f"{split}_labels.npy").tolist()
        self.classes = list(FASHION_MNIST_CLASSES)
        self.split, self.padding, self.channels, self.image_size = split, padding, channels, image_size
        self.sample_shape = (channels, image_size, image_size)
        self.transform = transform
        self.augment = augment
        self.pipeline = None
        if augment == "mae":
            from m2pt.data.augment.images import mae_test_transform, mae_train_transform

            make = mae_train_transform if split == "train" else mae_test_transform
            self.pipeline = make(image_size, (FASHION_MNIST_MEAN,) * channels, (FASHION_MNIST_STD,) * channels)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.pipeline is not None:
            from PIL import Image, ImageOps

            picture = ImageOps.expand(Image.fromarray(self.images[index].numpy()), self.padding, fill=0)
            image = self.pipeline(picture.convert("RGB" if self.channels == 3 else "L"))
            return (self.transform(image) if self.transform is not None else image), int(self.targets[index])
        image = self.images[index].float().div_(255.0)[None]
        if self.padding:
            image = F.pad(image, (self.padding,) * 4)
        if image.shape[-1] != self.image_size:
            image = F.interpolate(image[None], size=(self.image_size,) * 2, mode="bilinear",
                                  align_corners=False, antialias=True)[0]
        image = ((image - FASHION_MNIST_MEAN) / FASHION_MNIST_STD).expand(self.channels, -1, -1)
        if self.transform is not None:
            image = self.transform(image)
        return image.contiguous(), int(self.targets[index])

    def _repr_details(self) -> str:
        return f"split='{self.split}', folder='{self.folder}'"
