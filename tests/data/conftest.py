"""Writers of tiny fixture files in each real on-disk format."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def write_wav(path: Path, seconds: float, rate: int = 22050, channels: int = 1,
              frequency: float = 440.0) -> None:
    """Write a sine tone as 16-bit PCM with the standard library ``wave`` module."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t)
    pcm = (np.repeat(tone[:, None], channels, axis=1) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm.tobytes())


def write_mp4(path: Path, frames: np.ndarray, codec: str = "mpeg4", rate: int = 10) -> None:
    """Encode ``[T, H, W, 3]`` uint8 frames with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, rate)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def brightness_ramp(num_frames: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frames whose grey level encodes the frame index (index * 20), to check sampling."""
    levels = (np.arange(num_frames) * 20).clip(0, 255).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
