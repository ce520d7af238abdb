"""Video clips from a ``path label`` list file (the VideoMAE / Kinetics convention).

Each line of the list file is ``<path> <label>`` (whitespace- or comma-separated; the label is
the last field, so paths may contain spaces). Paths are relative to ``root`` (default: the
list file's folder). Labels are integers, or class names when every label is a name.

Decoding uses PyAV. Temporal sampling picks ``num_frames`` frames ``frame_stride`` apart:

* ``"center"``: the window is centred in the video (evaluation);
* ``"random"``: the window starts at a random frame (training);
* ``"uniform"``: ``num_frames`` frames evenly spread over the whole video (stride ignored).

A video shorter than the window (``(num_frames - 1) * frame_stride + 1`` frames) is *looped*
(frame indices wrap around, ``short_video="loop"``) or *padded* by repeating its last frame
(``short_video="pad"``). Frames are resized so the short side is ``short_side`` (default
``image_size``), cropped to ``image_size`` squared (centre, or random with
``spatial_crop="random"``), scaled to [0, 1] and normalised with ``mean`` / ``std``
(default ImageNet's, as VideoMAE). The output is ``[3, num_frames, image_size, image_size]``.

``augment="videomae"`` replaces the resize / crop of training clips by VideoMAE's augmentation
(:mod:`m2pt.data.augment.video`). ``test_clips`` x ``test_crops`` > 1 gives multi-view test
items ``[views, 3, T, S, S]``: ``test_clips`` windows evenly spaced in time (frame stride kept),
each cut into ``test_crops`` squares evenly spaced along the long side; the evaluation averages
the views' softmax scores (``view_reduction``), as VideoMAE's 5 x 3 test on Kinetics.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from m2pt.data.augment import check_augment
from m2pt.data.augment.video import VideoMAETrainTransform, evenly_spaced, resize_short_side, spatial_crops
from m2pt.data.base import LabelledDataset, class_names
from m2pt.data.errors import DatasetError
from m2pt.data.images import IMAGENET_MEAN, IMAGENET_STD
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker
from m2pt.optional import optional_import
av = optional_import("av", "data", "m2pt.data.video (video decoding)")

PathLike = Union[str, os.PathLike]

TEMPORAL_MODES = ("center", "random", "uniform")
SHORT_VIDEO_MODES = ("loop", "pad")


def read_video_list(list_file: Path) -> list[tuple[str, str]]:
    """Read ``(path, label)`` pairs from a ``path label`` list file.

    Raises:
        DatasetError: When the file is missing, empty or has a line without a label.
    """
    if not list_file.is_file():
        raise DatasetError(f"video list file {list_file} does not exist; it should hold one "
                           "'<relative/path.mp4> <label>' line per clip")
    rows = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"[\s,]+(?=[^\s,]+$)", line)
        if len(parts) != 2:
            raise DatasetError(f"{list_file}:{number}: '{line}' is not '<path> <label>'")
        rows.append((parts[0].strip(), parts[1]))
    if not rows:
        raise DatasetError(f"video list file {list_file} lists no clips")
    return rows


def sample_frame_indices(total: int, num_frames: int, frame_stride: int, mode: str,
                         short_video: str = "loop") -> list[int]:
    """Return the indices of the frames to keep from a video of ``total`` frames."""
    if mode == "uniform":
        return np.linspace(0, total - 1, num_frames).round().astype(int).tolist()
    span = (num_frames - 1) * frame_stride + 1
    if total >= span:
        spare = total - span
        start = int(torch.randint(0, spare + 1, ())) if mode == "random" else spare // 2
        return [start + i * frame_stride for i in range(num_frames)]
    offsets = [i * frame_stride for i in range(num_frames)]
    if short_video == "loop":
        return [offset % total for offset in offsets]
    return [min(offset, total - 1) for offset in offsets]


def decode_video_frames(path: PathLike, choose_indices: Callable[[int], list[int]]) -> np.ndarray:
    """Decode the frames ``choose_indices(total_frames)`` of a video as ``[T, H, W, 3]`` uint8.

    Decoding stops after the last needed frame when the container declares its frame count;
    when it does not (or declares too many), every frame is decoded and counted.

    Raises:
        av.FFmpegError: When FFmpeg cannot read the file.
        ValueError: When the file has no video stream or no decodable frame.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        # One thread per clip: FFmpeg's frame threads cost more than they save on short clips;
        # parallelise across clips with DataLoader workers instead.
        stream.codec_context.thread_count = 1
        declared = stream.frames
        wanted = choose_indices(declared) if declared > 0 else None
        last_needed = max(wanted) if wanted else None
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if last_needed is not None and len(frames) > last_needed:
                break
    if not frames:
        raise ValueError("no decodable video frame")
    if wanted is None or len(frames) <= last_needed:
        wanted = choose_indices(len(frames))
    return np.stack([frames[i] for i in wanted])


def resize_and_crop(frames: torch.Tensor, short_side: int, size: int, random_crop: bool) -> torch.Tensor:
    """Resize ``[T, C, H, W]`` float frames to ``short_side`` then crop ``size`` x ``size``."""
    height, width = frames.shape[-2:]
    scale = short_side / min(height, width)
    new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
    if new_size != (height, width):
        frames = F.interpolate(frames, size=new_size, mode="bilinear", align_corners=False,
                               antialias=True)
    spare_h, spare_w = new_size[0] - size, new_size[1] - size
    if random_crop:
        top, left = int(torch.randint(0, spare_h + 1, ())), int(torch.randint(0, spare_w + 1, ()))
    else:
        top, left = spare_h // 2, spare_w // 2
    return frames[..., top:top + size, left:left + size]


class VideoListDataset(LabelledDataset):
    """Clips listed in a ``path label`` file; returns ``(video [3, T, H, W], label)``.

    Args:
        list_file: The list file.
        root: Folder the listed paths are relative to (default: the list file's folder).
        num_frames: Frames per clip (T).
        frame_stride: Distance between sampled frames.
        image_size: Output height and width.
        short_side: Short side after resizing, before cropping (default ``image_size``).
        temporal_sampling: ``"center"``, ``"random"`` or ``"uniform"`` (see module doc).
        spatial_crop: ``"center"`` or ``"random"``.
        short_video: ``"loop"`` or ``"pad"`` for videos shorter than the sampling window.
        classes: Class names in label order (default: ``"0"``.. for integer labels, the
            sorted names for named labels).
        mean: Per-channel mean of [0, 1] frames.
        std: Per-channel standard deviation.
        transform: Optional callable applied to the normalised clip.
        max_bad_fraction: Tolerated fraction of unreadable videos.
        augment: ``"none"``, or ``"videomae"`` for VideoMAE's training augmentation.
        test_clips: Temporal views per item (multi-view test).
        test_crops: Spatial views per temporal view (multi-view test).
        repeats: With ``augment``, augmented clips per decoded video (VideoMAE's repeated
            augmentation, ``num_sample``); items are then ``[repeats, 3, T, S, S]`` and the
            training loader makes each a ``repeats`` of batch entries with the same label.
    """

    view_reduction = "softmax"

    def __init__(self, list_file: PathLike, root: PathLike | None = None, num_frames: int = 16,
                 frame_stride: int = 4, image_size: int = 224, short_side: int | None = None,
                 temporal_sampling: str = "center", spatial_crop: str = "center",
                 short_video: str = "loop", classes: Sequence[str] | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, augment: str = "none",
                 test_clips: int = 1, test_crops: int = 1, repeats: int = 1) -> None:
        try:
            check_augment("video", augment)
        except ValueError as error:
            raise DatasetError(str(error)) from None
        if test_clips < 1 or test_crops < 1:
            raise DatasetError(f"test_clips and test_crops must be at least 1, got {test_clips} and {test_crops}")
        if repeats < 1 or (repeats > 1 and augment == "none"):
            raise DatasetError(f"repeats={repeats}: repeated augmentation needs augment='videomae' and repeats >= 1")
        if augment != "none" and test_clips * test_crops > 1:
            raise DatasetError("training augmentation and multi-view test are for different splits; "
                               "pass augment='none' with test_clips / test_crops")
        if temporal_sampling not in TEMPORAL_MODES:
            raise DatasetError(f"temporal_sampling must be one of {TEMPORAL_MODES}, got "
                               f"'{temporal_sampling}'")
        if short_video not in SHORT_VIDEO_MODES:
            raise DatasetError(f"short_video must be one of {SHORT_VIDEO_MODES}, got '{short_video}'")
        if spatial_crop not in ("center", "random"):
            raise DatasetError(f"spatial_crop must be 'center' or 'random', got '{spatial_crop}'")
        self.list_file = Path(list_file)
        self.root = Path(root) if root is not None else self.list_file.parent
        rows = read_video_list(self.list_file)
        self.classes, self.targets = self._resolve_labels([label for _, label in rows], classes)
        self.paths = [self.root / path for path, _ in rows]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise DatasetError(f"{self.list_file} lists {len(missing)} missing files, e.g. "
                               f"{missing[:3]}; check root= (paths are relative to {self.root})")
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.image_size = image_size
        self.short_side = short_side or image_size
        self.temporal_sampling, self.spatial_crop, self.short_video = (
            temporal_sampling, spatial_crop, short_video)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
        self.augment, self.test_clips, self.test_crops = augment, test_clips, test_crops
        self.num_views = test_clips * test_crops
        self.sample_shape = (3, num_frames, image_size, image_size)
        if self.num_views > 1:
            self.sample_shape = (self.num_views, *self.sample_shape)
        self.num_repeats = repeats
        if repeats > 1:
            self.sample_shape = (repeats, *self.sample_shape)
        self.train_transform = (VideoMAETrainTransform(image_size, mean, std, short_side=self.short_side)
                                if augment == "videomae" else None)
        self.transform = transform
        self.tracker = BadFileTracker([str(p) for p in self.paths], max_bad_fraction,
                                      f"VideoListDataset({self.list_file})")

    def _resolve_labels(self, labels: list[str], classes: Sequence[str] | None
                        ) -> tuple[list[str], list[int]]:
        if all(label.lstrip("-").isdigit() for label in labels):
            indices = [int(label) for label in labels]
            names = class_names(classes) if classes is not None else [str(i) for i in range(max(indices) + 1)]
            bad = sorted({i for i in indices if not 0 <= i < len(names)})
            if bad:
                raise DatasetError(f"{self.list_file}: labels {bad[:5]} are outside the "
                                   f"{len(names)} classes; pass the full class list (classes=...)")
            return names, indices
        names = class_names(classes) if classes is not None else sorted(set(labels))
        lookup = {name: index for index, name in enumerate(names)}
        unknown = sorted(set(labels) - set(lookup))
        if unknown:
            raise DatasetError(f"{self.list_file}: unknown class names {unknown[:5]}; known: "
                               f"{names[:10]}. Fix the list file or pass classes=...")
        return names, [lookup[label] for label in labels]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        if self.num_views > 1:
            return self._load_views(index)
        frames = decode_video_frames(self.paths[index], lambda total: sample_frame_indices(
            total, self.num_frames, self.frame_stride, self.temporal_sampling, self.short_video))
        if self.train_transform is not None:
            clips = [self.train_transform(frames) for _ in range(self.num_repeats)]
            if self.transform is not None:
                clips = [self.transform(clip) for clip in clips]
            return (torch.stack(clips) if self.num_repeats > 1 else clips[0]), self.targets[index]
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        clip = resize_and_crop(clip, self.short_side, self.image_size,
                               self.spatial_crop == "random")
        clip = (clip.permute(1, 0, 2, 3) - self.mean) / self.std
        if self.transform is not None:
            clip = self.transform(clip)
        return clip.contiguous(), self.targets[index]

    def clip_windows(self, total: int) -> list[list[int]]:
        """The frame indices of each of the ``test_clips`` windows in a video of ``total`` frames."""
        span = (self.num_frames - 1) * self.frame_stride + 1
        if total < span:
            short = sample_frame_indices(total, self.num_frames, self.frame_stride, "center", self.short_video)
            return [short] * self.test_clips
        return [[start + i * self.frame_stride for i in range(self.num_frames)]
                for start in evenly_spaced(total - span, self.test_clips)]

    def _load_views(self, index: int) -> tuple[torch.Tensor, int]:
        frames = decode_video_frames(self.paths[index], lambda total: [
            i for window in self.clip_windows(total) for i in window])
        frames = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        frames = resize_short_side(frames, max(self.short_side, self.image_size))
        views = []
        for clip in frames.split(self.num_frames):
            for crop in spatial_crops(clip, self.image_size, self.test_crops):
                crop = (crop.permute(1, 0, 2, 3) - self.mean) / self.std
                views.append(self.transform(crop) if self.transform is not None else crop)
        return torch.stack(views).contiguous(), self.targets[index]

    def _repr_details(self) -> str:
        return (f"num_frames={self.num_frames}, frame_stride={self.frame_stride}, "
                f"list_file='{self.list_file}'")
