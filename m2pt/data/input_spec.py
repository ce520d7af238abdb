"""What a model's input is, recorded with the model, and one file turned into that input.

A trained model file carries its class names and an *input spec*: the modality and every
setting the data pipeline used (image size and channels and normalisation, clip length and
fbank settings, frames, number of points). ``m2pt evaluate`` and ``m2pt predict`` rebuild
the same pipeline from it, so a model is used the way it was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from m2pt.data.errors import DatasetError


def _floats(value: Any) -> list[float]:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.reshape(-1)]
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(v) for v in value]


def input_spec(dataset: Dataset, modality: str) -> dict[str, Any]:
    """The input settings of ``dataset`` (a training set), JSON-serialisable.

    Keys are the dataset options of the same name where one exists (``image_size``,
    ``channels``, ``mean``, ``std``, ``num_frames``, ``clip_seconds``, ``num_points``, ...).
    """
    spec: dict[str, Any] = {"modality": modality}
    if modality == "image":
        channels, image_size = int(dataset.sample_shape[0]), int(dataset.sample_shape[-1])
        mean, std = getattr(dataset, "mean", None), getattr(dataset, "std", None)
        if mean is None:  # the built-in Fashion-MNIST normalises with its own statistics
            from m2pt.data.builtin.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD

            mean, std = (FASHION_MNIST_MEAN,) * channels, (FASHION_MNIST_STD,) * channels
        spec.update(image_size=image_size, channels=channels, mean=_floats(mean), std=_floats(std),
                    padding=int(getattr(dataset, "padding", 0) or 0))
    elif modality == "video":
        spec.update(num_frames=int(dataset.num_frames), frame_stride=int(dataset.frame_stride),
                    image_size=int(dataset.image_size), short_side=int(dataset.short_side),
                    mean=_floats(dataset.mean), std=_floats(dataset.std))
    elif modality == "audio":
        spec.update(clip_seconds=float(dataset.clip_seconds), sample_rate=16000)
        fbank = getattr(dataset, "transform", None)
        if fbank is not None and hasattr(fbank, "num_mel_bins"):
            spec.update(target_length=int(fbank.target_length), num_mel_bins=int(fbank.num_mel_bins),
                        fbank_mean=float(fbank.mean), fbank_std=float(fbank.std),
                        fbank_normalize=bool(fbank.normalize))
    elif modality == "point":
        spec.update(num_points=int(dataset.sample_shape[0]),
                    point_selection=str(getattr(dataset, "point_selection", "first")),
                    normalization="unit_sphere")
    return spec


def load_input(path: str | Path, spec: Mapping[str, Any]) -> torch.Tensor:
    """One file as the model's input (no batch dimension), preprocessed as in evaluation.

    Images: anything PIL opens; audio and video: anything FFmpeg opens; point clouds: ModelNet
    ``x,y,z[,...]`` text files or ``.npy`` arrays ``[N, >=3]``.

    Raises:
        DatasetError: the file cannot be read as this modality (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    try:
        return _LOADERS[spec["modality"]](path, spec)
    except DatasetError:
        raise
    except Exception as exc:  # any decoder error means the file is not usable input
        raise DatasetError(f"{path} is not a readable {spec['modality']} input: {type(exc).__name__}: {exc}") from exc


def _image(path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
    from PIL import Image
    from torchvision import transforms

    from m2pt.data.images import load_image

    size, channels = spec["image_size"], spec["channels"]
    preprocess = transforms.Compose([
        transforms.Pad(spec.get("padding", 0)), transforms.Resize((size, size), antialias=True),
        transforms.ToTensor(), transforms.Normalize(spec["mean"], spec["std"])])
    with Image.open(path) as image:
        return load_image(image, channels, preprocess, size, spec["mean"], spec["std"])


def _audio(path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
    from m2pt.data.audio import decode_audio, fit_length
    from m2pt.models import FbankTransform

    clip = torch.from_numpy(fit_length(decode_audio(path), round(spec["clip_seconds"] * spec["sample_rate"])))[None]
    if "target_length" not in spec:
        return clip
    fbank = FbankTransform(target_length=spec["target_length"], num_mel_bins=spec["num_mel_bins"],
                           mean=spec["fbank_mean"], std=spec["fbank_std"], normalize=spec["fbank_normalize"])
    return fbank.eval()(clip)


def _video(path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
    from m2pt.data.video import decode_video_frames, resize_and_crop, sample_frame_indices

    frames = decode_video_frames(path, lambda total: sample_frame_indices(
        total, spec["num_frames"], spec["frame_stride"], "center"))
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
    clip = resize_and_crop(clip, spec["short_side"], spec["image_size"], False).permute(1, 0, 2, 3)
    mean = torch.tensor(spec["mean"]).view(-1, 1, 1, 1)
    std = torch.tensor(spec["std"]).view(-1, 1, 1, 1)
    return ((clip - mean) / std).contiguous()


def _point(path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
    from m2pt.data.points import normalize_to_unit_sphere, read_modelnet_txt, select_points

    data = np.load(path) if path.suffix == ".npy" else read_modelnet_txt(path)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] < 3 or not np.isfinite(data[:, :3]).all():
        raise DatasetError(f"{path}: expected finite points [N, >=3], got shape {tuple(data.shape)}")
    keep = select_points(len(data), spec["num_points"], spec.get("point_selection", "first"), 0)
    return torch.from_numpy(normalize_to_unit_sphere(data[keep, :3]).astype(np.float32))


_LOADERS = {"image": _image, "audio": _audio, "video": _video, "point": _point}
