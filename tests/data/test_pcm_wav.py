"""The 16-bit PCM WAV fast path gives FFmpeg's samples bit for bit, and leaves every other file to FFmpeg."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest

from m2pt.data.audio import decode_audio
from m2pt.data.pcm_wav import read_pcm_wav
from tests.data.conftest import write_wav


def _write_pcm(path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(samples.shape[1])
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(samples.astype(f"<i{width}").tobytes())


def _ffmpeg(path) -> np.ndarray:
    with open(path, "rb") as file:  # a file object takes PyAV's path
        return decode_audio(file)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_pcm_wav_at_the_target_rate_is_read_directly_with_ffmpegs_result(tmp_path, channels):
    rng = np.random.default_rng(channels)
    samples = rng.integers(-32768, 32768, size=(16000, channels))  # full range, channels all different
    samples[:4] = [[-32768] * channels, [32767] * channels, [0] * channels, [1] * channels]
    _write_pcm(tmp_path / "clip.wav", samples, 16000)
    direct = read_pcm_wav(tmp_path / "clip.wav", 16000)
    assert direct is not None and direct.dtype == np.float32 and direct.shape == (16000,)
    assert np.array_equal(direct, _ffmpeg(tmp_path / "clip.wav"))
    assert np.array_equal(decode_audio(tmp_path / "clip.wav"), direct)
    if channels == 1:
        assert direct[:4].tolist() == [-1.0, 32767 / 32768, 0.0, 1 / 32768]


def test_other_rates_widths_encodings_and_broken_files_go_to_ffmpeg(tmp_path):
    write_wav(tmp_path / "8k.wav", 0.25, rate=8000)
    assert read_pcm_wav(tmp_path / "8k.wav", 16000) is None
    assert decode_audio(tmp_path / "8k.wav").shape == (4000,)  # resampled by FFmpeg

    _write_pcm(tmp_path / "32bit.wav", np.zeros((100, 1), dtype=np.int64), 16000, width=4)
    assert read_pcm_wav(tmp_path / "32bit.wav", 16000) is None

    with av.open(str(tmp_path / "float.wav"), "w") as container:  # IEEE float WAV: not PCM to wave
        stream = container.add_stream("pcm_f32le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.full((1, 1600), 0.25, dtype=np.float32), format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert read_pcm_wav(tmp_path / "float.wav", 16000) is None
    assert np.allclose(decode_audio(tmp_path / "float.wav"), 0.25)

    write_wav(tmp_path / "tone.wav", 0.1, rate=16000)
    (tmp_path / "tone.flac.wav").write_bytes(b"RIFF\x00\x00\x00\x00garbage")
    assert read_pcm_wav(tmp_path / "tone.flac.wav", 16000) is None
    with pytest.raises(av.FFmpegError):
        decode_audio(tmp_path / "tone.flac.wav")
    (tmp_path / "tone.raw").write_bytes((tmp_path / "tone.wav").read_bytes())
    assert read_pcm_wav(tmp_path / "tone.raw", 16000) is None  # only files named .wav

    _write_pcm(tmp_path / "empty.wav", np.zeros((0, 1), dtype=np.int64), 16000)
    assert read_pcm_wav(tmp_path / "empty.wav", 16000) is None
    with pytest.raises((ValueError, av.FFmpegError)):
        decode_audio(tmp_path / "empty.wav")
