"""Moving digits (the Moving-MNIST recipe), written as mp4 and read like users' videos.

One digit image (8x8 scikit-learn ``load_digits`` digits, or Fashion-MNIST items) is scaled
to ``digit_size`` pixels and moves over a black ``image_size`` canvas for ``clip_frames``
frames. Labels:

* ``label_by="class"``: the digit (or garment) class; the digit moves in a random direction
  at 1-3 px/frame and bounces off the edges;
* ``label_by="direction"``: one of 8 compass directions of motion (random digit), with a
  start point chosen so the digit never bounces within the clip.

Train and test clips use disjoint digit images (a seeded 80/20 split of scikit-learn's
digits, or Fashion-MNIST's own train/test split). Clips are encoded with PyAV (H.264 when
FFmpeg has libx264, else MPEG-4 Part 2), listed in ``<split>.txt`` (``path label``), and read
back through :class:`m2pt.data.video.VideoListDataset`. Normalisation uses the mean/std of the
training clips, stored in ``meta.json``.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from m2pt.data.cache import PathLike, data_root, generating_folder
from m2pt.data.errors import DatasetError
from m2pt.data.video import VideoListDataset
from m2pt.optional import optional_import
av = optional_import("av", "data", "the built-in moving-digits videos")

DIRECTIONS = ("east", "north-east", "north", "north-west", "west", "south-west", "south",
              "south-east")
FRAME_RATE = 8


def load_digit_images(source: str, split: str, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return ``(images [N, H, W] float in [0, 1], labels [N], class names)`` of one split."""
    if source == "sklearn":
        load_digits = optional_import("sklearn.datasets", "data", "the built-in moving digits (sklearn source)").load_digits

        digits = load_digits()
        order = np.random.default_rng(seed).permutation(len(digits.target))
        cut = int(0.8 * len(order))
        keep = order[:cut] if split == "train" else order[cut:]
        return digits.images[keep] / 16.0, digits.target[keep], [str(d) for d in range(10)]
    if source == "fashion_mnist":
        from m2pt.data.builtin.fashion_mnist import (FASHION_MNIST_CLASSES, IDX_STEMS,
                                                     find_fashion_mnist_folder, idx_file)
        from m2pt.data.builtin.idx import read_idx

        folder = find_fashion_mnist_folder()
        image_stem, label_stem = IDX_STEMS[split]
        images = read_idx(idx_file(folder, image_stem)) / 255.0
        return images, read_idx(idx_file(folder, label_stem)).astype(np.int64), FASHION_MNIST_CLASSES
    raise DatasetError(f"digit_source must be 'sklearn' or 'fashion_mnist', got '{source}'")


def render_clip(digit: np.ndarray, num_frames: int, canvas: int, start: np.ndarray,
                velocity: np.ndarray) -> np.ndarray:
    """Return ``[T, canvas, canvas]`` uint8 frames of ``digit`` moving (bouncing off edges)."""
    size = digit.shape[0]
    limit = canvas - size
    position, velocity = start.astype(float), velocity.astype(float)
    frames = np.zeros((num_frames, canvas, canvas), dtype=np.uint8)
    for t in range(num_frames):
        top, left = (int(round(v)) for v in position)
        frames[t, top:top + size, left:left + size] = np.maximum(
            frames[t, top:top + size, left:left + size], (digit * 255).astype(np.uint8))
        position += velocity
        for axis in range(2):
            if not 0 <= position[axis] <= limit:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], 0, limit)
    return frames


def write_mp4(path: Path, frames: np.ndarray) -> None:
    """Encode grey ``[T, H, W]`` uint8 frames as an mp4 (H.264, or MPEG-4 as a fallback)."""
    with av.open(str(path), mode="w") as container:
        if "libx264" in av.codecs_available:
            stream = container.add_stream("libx264", rate=FRAME_RATE, options={"crf": "12"})
        else:
            stream = container.add_stream("mpeg4", rate=FRAME_RATE, options={"qscale": "2"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FRAME_RATE)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.repeat(image[..., None], 3, axis=2), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def generate_moving_digits(destination: Path, sizes: dict[str, int], seed: int, label_by: str,
                           digit_source: str, clip_frames: int, image_size: int,
                           digit_size: int) -> None:
    """Render, encode and list ``sizes[split]`` clips per split into ``destination``."""
    total_pixels, total_sum, total_square = 0, 0.0, 0.0
    class_names: list[str] = []
    for split_number, (split, size) in enumerate(sizes.items()):
        images, labels, class_names = load_digit_images(digit_source, split, seed)
        images = F.interpolate(torch.from_numpy(images).float()[:, None], size=(digit_size,) * 2,
                               mode="bilinear", align_corners=False, antialias=True)[:, 0]
        images = images.clamp(0, 1).numpy()
        rng = np.random.default_rng([seed, split_number])
        (destination / split).mkdir()
        lines = []
        limit = image_size - digit_size
        for number in tqdm(range(size), desc=f"moving digits ({split})", unit="clip"):
            if label_by == "class":
                label = number % len(class_names)
                choice = rng.choice(np.flatnonzero(labels == label))
                angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 3.0)
                start = rng.uniform(0, limit, size=2)
            else:
                label = number % len(DIRECTIONS)
                choice = rng.integers(len(labels))
                angle, speed = label * math.pi / 4, rng.uniform(1.0, 2.0)
            velocity = speed * np.array([-math.sin(angle), math.cos(angle)])  # (row, column)
            if label_by == "direction":
                travel = velocity * (clip_frames - 1)
                low, high = np.maximum(0, -travel), np.minimum(limit, limit - travel)
                start = rng.uniform(low, high)
            frames = render_clip(images[choice], clip_frames, image_size, start, velocity)
            if split == "train":
                values = frames.astype(np.float64) / 255.0
                total_pixels += values.size
                total_sum += values.sum()
                total_square += np.square(values).sum()
            relative = f"{split}/{number:05d}.mp4"
            write_mp4(destination / relative, frames)
            lines.append(f"{relative} {label}")
        (destination / f"{split}.txt").write_text("\n".join(lines) + "\n")
    mean = total_sum / total_pixels
    std = math.sqrt(max(total_square / total_pixels - mean ** 2, 1e-12))
    (destination / "meta.json").write_text(json.dumps({
        "classes": class_names if label_by == "class" else list(DIRECTIONS), "mean": mean,
        "std": std, "seed": seed, "label_by": label_by, "digit_source": digit_source}, indent=2))


class MovingDigitsDataset(VideoListDataset):
    """Built-in moving-digit clips; returns ``(video [3, T, H, W], label)``.

    Args:
        split: ``"train"`` or ``"test"`` (``"val"`` means ``"test"``).
        root: Data cache folder (default ``$M2PT_DATA`` or ``~/.cache/m2pt/data``).
        seed: Seed of digits, motions and the digit-image split.
        train_size: Number of training clips (balanced over the labels).
        test_size: Number of test clips.
        label_by: ``"class"`` (digit class) or ``"direction"`` (8 motion directions).
        digit_source: ``"sklearn"`` (8x8 digits) or ``"fashion_mnist"`` (Debian package).
        clip_frames: Frames rendered per clip.
        image_size: Canvas height and width.
        digit_size: Height and width of the moving item.
        num_frames: Frames sampled per clip by the loader (default ``clip_frames``).
        frame_stride: Loader frame stride.
        temporal_sampling: Loader temporal sampling (see ``VideoListDataset``).
        transform: Optional callable applied to the normalised clip.
        augment, test_clips, test_crops, repeats: Training augmentation and multi-view test, see
            ``VideoListDataset``.
    """

    def __init__(self, split: str = "train", root: PathLike | None = None, seed: int = 0,
                 train_size: int = 400, test_size: int = 100, label_by: str = "class",
                 digit_source: str = "sklearn", clip_frames: int = 8, image_size: int = 32,
                 digit_size: int = 14, num_frames: int | None = None, frame_stride: int = 1,
                 temporal_sampling: str = "center",
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 augment: str = "none", test_clips: int = 1, test_crops: int = 1, repeats: int = 1) -> None:
        split = {"val": "test"}.get(split, split)
        if split not in ("train", "test"):
            raise DatasetError(f"split must be 'train' or 'test', got '{split}'")
        if label_by not in ("class", "direction"):
            raise DatasetError(f"label_by must be 'class' or 'direction', got '{label_by}'")
        if not 0 < digit_size < image_size:
            raise DatasetError(f"digit_size ({digit_size}) must be below image_size ({image_size})")
        name = (f"{digit_source}_{label_by}_train{train_size}_test{test_size}_f{clip_frames}"
                f"_s{image_size}_d{digit_size}_seed{seed}")
        self.folder = data_root(root) / "moving_digits" / name
        if not self.folder.is_dir():
            with generating_folder(self.folder) as tmp:
                generate_moving_digits(tmp, {"train": train_size, "test": test_size}, seed,
                                       label_by, digit_source, clip_frames, image_size, digit_size)
        meta = json.loads((self.folder / "meta.json").read_text())
        super().__init__(self.folder / f"{split}.txt", num_frames=num_frames or clip_frames,
                         frame_stride=frame_stride, image_size=image_size,
                         temporal_sampling=temporal_sampling, classes=meta["classes"],
                         mean=(meta["mean"],) * 3, std=(meta["std"],) * 3, transform=transform,
                         augment=augment, test_clips=test_clips, test_crops=test_crops, repeats=repeats)
