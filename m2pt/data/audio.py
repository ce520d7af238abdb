"""Audio clips listed in a CSV or JSON file, single- or multi-label (AudioSet convention).

List formats (paths relative to the list file's folder unless ``root`` is given):

* CSV with a header naming a path column (``path``, ``filename``, ``file`` or ``wav``) and a
  label column (``labels``, ``label``, ``positive_labels`` or ``class``); several labels go in
  one quoted, comma-separated field. Without such a header the first two columns are taken.
* JSON: a list of ``{"path" | "wav": ..., "labels" | "label": "a,b" | ["a", "b"]}`` objects,
  or AudioMAE's ``{"data": [{"wav": ..., "labels": "/m/09x0r,/m/05zppz"}]}``.

Labels are class names, or AudioSet machine ids (``mid``) when a class-index CSV
(``index,mid,display_name``, e.g. ``class_labels_indices.csv``) is given; then ``classes``
holds the display names in index order.

Audio is decoded with PyAV (any format FFmpeg reads; 16-bit PCM WAV at 16 kHz, the commonest
layout, is read directly with the same result), resampled to 16 kHz by FFmpeg's
resampler, downmixed to mono by averaging the channels, then cut or zero-padded at the end to
``clip_seconds``.
"""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence, Union

import numpy as np
import torch

from m2pt.data.augment.audio import mix_weight, roll_and_gain
from m2pt.data.base import LabelledDataset, class_names, multi_hot
from m2pt.data.errors import DatasetError
from m2pt.data.pcm_wav import read_pcm_wav
from m2pt.data.robust import DEFAULT_MAX_BAD_FRACTION, BadFileTracker
from m2pt.optional import optional_import
av = optional_import("av", "data", "m2pt.data.audio (audio decoding)")

PathLike = Union[str, os.PathLike]

SAMPLE_RATE = 16000
PATH_COLUMNS = ("path", "filename", "file", "wav")
LABEL_COLUMNS = ("labels", "label", "positive_labels", "class")


def decode_audio(path: PathLike | BinaryIO, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file (path or binary file object) to mono float32 at ``sample_rate``.

    A 16-bit PCM WAV file at ``sample_rate`` is read without FFmpeg, with the same result
    (:mod:`m2pt.data.pcm_wav`).

    Raises:
        av.FFmpegError: When FFmpeg cannot read the file.
        ValueError: When the file has no audio stream or no samples.
    """
    if not hasattr(path, "read"):
        samples = read_pcm_wav(path, sample_rate)
        if samples is not None:
            return samples
    with av.open(path if hasattr(path, "read") else str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        # Planar float keeps the channels apart ([channels, samples] arrays); they are averaged
        # here because FFmpeg's own mono downmix scales by -3 dB instead of averaging.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks = []
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise ValueError("no audio samples decoded")
    return np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32, copy=False)


def fit_length(waveform: np.ndarray, num_samples: int, offset: int = 0) -> np.ndarray:
    """Cut ``waveform`` to ``num_samples`` from ``offset``, or zero-pad it at the end."""
    clip = waveform[offset:offset + num_samples]
    if len(clip) < num_samples:
        clip = np.pad(clip, (0, num_samples - len(clip)))
    return clip


def _split_labels(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def read_audio_list(list_file: Path) -> list[tuple[str, list[str]]]:
    """Read ``(path, [label, ...])`` rows from a CSV or JSON list file.

    Raises:
        DatasetError: When the file is missing, empty or has no usable columns.
    """
    if not list_file.is_file():
        raise DatasetError(f"audio list file {list_file} does not exist; pass a CSV or JSON file "
                           "of (path, labels) rows")
    if list_file.suffix.lower() == ".json":
        data = json.loads(list_file.read_text())
        entries = data["data"] if isinstance(data, dict) and "data" in data else data
        rows = []
        for number, entry in enumerate(entries):
            path = next((entry[k] for k in PATH_COLUMNS if k in entry), None)
            labels = next((entry[k] for k in LABEL_COLUMNS if k in entry), None)
            if path is None or labels is None:
                raise DatasetError(f"{list_file}: entry {number} {entry!r} needs a path key "
                                   f"{PATH_COLUMNS} and a label key {LABEL_COLUMNS}")
            rows.append((str(path), _split_labels(labels)))
    else:
        with open(list_file, newline="") as file:
            lines = [row for row in csv.reader(file, skipinitialspace=True)
                     if row and not row[0].startswith("#")]
        if not lines:
            raise DatasetError(f"audio list file {list_file} is empty")
        header = [cell.strip().lower() for cell in lines[0]]
        path_column = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
        label_column = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
        if path_column is None or label_column is None:
            path_column, label_column = 0, 1
        else:
            lines = lines[1:]
        rows = []
        for number, row in enumerate(lines, start=1):
            if len(row) <= max(path_column, label_column):
                raise DatasetError(f"{list_file}: row {number} {row!r} has no label column; "
                                   "each row is: path,\"label1,label2\"")
            # An unquoted multi-label row spreads its labels over the trailing columns.
            labels = row[label_column:] if label_column == len(header) - 1 else [row[label_column]]
            rows.append((row[path_column].strip(), _split_labels(",".join(labels))))
    if not rows:
        raise DatasetError(f"audio list file {list_file} lists no files")
    return rows


def read_class_index(class_index_csv: Path) -> tuple[list[str], dict[str, int]]:
    """Read an AudioSet class index CSV (``index,mid,display_name``).

    Returns:
        Display names in index order, and a map from ``mid`` (and display name) to index.
    """
    if not class_index_csv.is_file():
        raise DatasetError(f"class index file {class_index_csv} does not exist")
    with open(class_index_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows or not {"index", "mid", "display_name"} <= set(rows[0]):
        raise DatasetError(f"{class_index_csv} must have the header index,mid,display_name")
    rows.sort(key=lambda r: int(r["index"]))
    names = [r["display_name"] for r in rows]
    lookup = {r["display_name"]: int(r["index"]) for r in rows}
    lookup.update({r["mid"]: int(r["index"]) for r in rows})
    return names, lookup


def _sorted_names(names: set[str]) -> list[str]:
    return sorted(names, key=int) if all(n.lstrip("-").isdigit() for n in names) else sorted(names)


class AudioListDataset(LabelledDataset):
    """Audio clips from a list file; returns ``(waveform [1, S], target)``.

    The target is the class index, or a multi-hot float vector when ``multi_label``.

    Args:
        list_file: CSV or JSON list of (path, labels).
        root: Folder the listed paths are relative to (default: the list file's folder).
        clip_seconds: Fixed clip length; ``S = round(clip_seconds * 16000)``.
        class_index_csv: AudioSet ``index,mid,display_name`` file; labels are then mids.
        classes: Class names in label order, if not taken from the class index or the list.
        multi_label: Force single- or multi-label targets (default: multi-label when a class
            index is given or any row has several labels).
        random_crop: Cut clips longer than ``clip_seconds`` at a random offset (training)
            instead of from the start.
        transform: Optional callable applied to the waveform (e.g. a fbank transform).
        max_bad_fraction: Tolerated fraction of unreadable files.
        roll: Roll each waveform in time and scale its gain (AudioMAE's training augmentation).
        mixup: Chance of mixing each clip with another random clip of the dataset (AudioMAE
            uses 0.5); when above 0 every target is a float vector (one-hot or multi-hot).
    """

    def __init__(self, list_file: PathLike, root: PathLike | None = None,
                 clip_seconds: float = 10.0, class_index_csv: PathLike | None = None,
                 classes: Sequence[str] | None = None, multi_label: bool | None = None,
                 random_crop: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION, roll: bool = False,
                 mixup: float = 0.0) -> None:
        if not 0.0 <= mixup <= 1.0:
            raise DatasetError(f"mixup is a probability in [0, 1], got {mixup}")
        self.roll, self.mixup = roll, mixup
        self.list_file = Path(list_file)
        rows = read_audio_list(self.list_file)
        self.root = Path(root) if root is not None else self.list_file.parent
        if class_index_csv is not None:
            self.classes, lookup = read_class_index(Path(class_index_csv))
        else:
            self.classes = class_names(classes) if classes is not None else _sorted_names(
                {label for _, labels in rows for label in labels})
            lookup = {name: index for index, name in enumerate(self.classes)}
        self.paths: list[Path] = []
        self.targets: list[Any] = []
        for path, labels in rows:
            unknown = [label for label in labels if label not in lookup]
            if unknown or not labels:
                raise DatasetError(
                    f"{self.list_file}: '{path}' has unknown or no labels {unknown or labels}; "
                    f"known classes start with {list(lookup)[:5]}. Fix the list file or pass "
                    "the full class list (classes=... or class_index_csv=...)")
            self.paths.append(self.root / path)
            self.targets.append(sorted({lookup[label] for label in labels}))
        self.multi_label = (class_index_csv is not None or any(len(t) > 1 for t in self.targets)
                            if multi_label is None else multi_label)
        if not self.multi_label:
            if any(len(t) > 1 for t in self.targets):
                raise DatasetError(f"{self.list_file} has rows with several labels; use "
                                   "multi_label=True")
            self.targets = [t[0] for t in self.targets]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise DatasetError(f"{self.list_file} lists {len(missing)} missing files, e.g. "
                               f"{missing[:3]}; check root= (paths are relative to {self.root})")
        self.num_samples = round(clip_seconds * SAMPLE_RATE)
        self.clip_seconds = clip_seconds
        self.sample_shape = (1, self.num_samples)
        self.random_crop = random_crop
        self.transform = transform
        self.tracker = BadFileTracker([str(p) for p in self.paths], max_bad_fraction,
                                      f"AudioListDataset({self.list_file})")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        return self.tracker.load(index, self._load)

    def _load(self, index: int) -> tuple[torch.Tensor, Any]:
        waveform, target = self._waveform(index), self._target(index)
        if self.mixup > 0 and random.random() < self.mixup:
            other_waveform, other_target = self.tracker.load(
                random.randint(0, len(self) - 1), lambda i: (self._waveform(i), self._target(i)))
            weight = mix_weight()
            waveform = weight * waveform + (1 - weight) * other_waveform
            target = weight * target + (1 - weight) * other_target
        clip = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None]
        if self.transform is not None:
            clip = self.transform(clip)
        return clip, target

    def _waveform(self, index: int) -> np.ndarray:
        waveform = decode_audio(self.paths[index])
        spare = len(waveform) - self.num_samples
        offset = random.randint(0, spare) if self.random_crop and spare > 0 else 0
        waveform = fit_length(waveform, self.num_samples, offset)
        return roll_and_gain(waveform) if self.roll else waveform

    def _target(self, index: int) -> Any:
        target = self.targets[index]
        if self.multi_label:
            return multi_hot(target, self.num_classes)
        return multi_hot([target], self.num_classes) if self.mixup > 0 else target

    def _repr_details(self) -> str:
        return f"clip_seconds={self.clip_seconds}, list_file='{self.list_file}'"
