"""An ImageFolder of generated JPEGs of ImageNet-like sizes, for the loader benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_jpeg_folder(root: Path, images: int, classes: int = 10, seed: int = 0,
                      splits: tuple[str, ...] = ("train", "val")) -> Path:
    """``root/<split>/<class>/<n>.jpg``: smooth colour fields with noise, 300-500 x 250-450 pixels.

    ImageNet's training images average about 400 x 350; decode time grows with the pixel count.
    """
    rng = np.random.default_rng(seed)
    for split in splits:
        for index in range(images):
            width, height = int(rng.integers(300, 501)), int(rng.integers(250, 451))
            y, x = np.mgrid[0:height, 0:width].astype(np.float32)
            phase = rng.uniform(0, 6.28, 3)
            pixels = np.stack([127 + 100 * np.sin(x / (20 + 10 * c) + y / 37 + phase[c]) for c in range(3)], -1)
            pixels += rng.normal(0, 12, pixels.shape)
            folder = root / split / f"class{index % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.jpg", quality=90)
    return root
