"""A fast path for 16-bit PCM WAV files: read with the standard library instead of FFmpeg.

Opening a file through PyAV (container, stream, resampler) costs a few milliseconds per clip,
most of the loading time of a one-second clip. For the commonest layout (16-bit PCM at the
target sample rate) the samples need no resampling, and :func:`read_pcm_wav` returns exactly
what PyAV's path in :func:`m2pt.data.audio.decode_audio` returns: FFmpeg converts ``s16`` to
float by multiplying by ``2**-15``, which is exact, and the channels are averaged the same way.
"""

from __future__ import annotations

import os
import wave
from typing import Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]
PCM_SAMPLE_WIDTH = 2


def read_pcm_wav(path: PathLike, sample_rate: int) -> Optional[np.ndarray]:
    """Mono float32 samples of a 16-bit PCM WAV file recorded at ``sample_rate``.

    Args:
        path: The file.
        sample_rate: The rate the caller wants; a file at another rate is not read here.

    Returns:
        The samples (channels averaged), or None when the file is not a 16-bit PCM WAV at
        ``sample_rate`` (another format, another rate, an unreadable header): the caller decodes
        it with FFmpeg, which also reports what is wrong with a broken file.
    """
    if not str(path).lower().endswith(".wav"):
        return None
    try:
        with wave.open(str(path), "rb") as reader:
            if reader.getsampwidth() != PCM_SAMPLE_WIDTH or reader.getframerate() != sample_rate:
                return None
            channels = reader.getnchannels()
            data = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError, OSError):
        return None
    frames = len(data) // (PCM_SAMPLE_WIDTH * channels)
    if frames == 0:
        return None
    samples = np.frombuffer(data[:frames * PCM_SAMPLE_WIDTH * channels], dtype="<i2").reshape(frames, channels)
    planar = np.ascontiguousarray(samples.T, dtype=np.float32) * np.float32(2.0 ** -15)
    return planar.mean(axis=0).astype(np.float32, copy=False)
