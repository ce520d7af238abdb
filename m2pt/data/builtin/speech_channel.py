"""Recording conditions for synthetic speech: speed, room, silence, background noise, telephone, level.

The espeak-ng digits of :mod:`m2pt.data.builtin.spoken_words` are clean, trimmed and at full
scale: a model trained on them learns one synthesiser's signature. :func:`apply_channel` puts a
clip through the variability of real recordings, each effect drawn per clip from a seeded
generator (the same seed gives the same samples, bit for bit):

1. speed and pitch together, by resampling (on top of espeak's own ``-s`` / ``-p``);
2. reverberation: convolution with a synthetic room impulse response (a direct path plus
   exponentially decaying noise of a random RT60; :func:`synthetic_room_response`);
3. random leading and trailing silence: the word is placed at a random offset in the clip;
4. background noise over the whole clip (white, pink or brown) at a random SNR;
5. a telephone channel on some clips: 300-3400 Hz band at 8 kHz, 8-bit μ-law;
6. level: the clip's peak set to a random dBFS value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

#: Bumped whenever :func:`apply_channel` changes what it produces for the same draws (it is in
#: the cache folder name, so clips written by an older version are never reused silently).
CHANNEL_VERSION = 1
TELEPHONE_RATE = 8000
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


@dataclass(frozen=True)
class SpeechChannel:
    """Ranges of the recording conditions (each effect drawn uniformly per clip).

    Attributes:
        speed_range: Resampling speed factor (> 1: faster and higher), quantised to 0.01.
        reverb_probability: Fraction of clips put through a synthetic room.
        rt60_range: Reverberation time (s) of the room: time for the tail to decay by 60 dB.
        direct_to_reverb_db: Energy ratio of the direct path to the reverberant tail (dB).
        snr_db_range: Signal-to-noise ratio of the background noise (dB, speech power).
        noise_colours: Colours of the noise to draw from (``white``, ``pink``, ``brown``).
        telephone_probability: Fraction of clips band-limited and μ-law coded like a telephone.
        telephone_band: Pass band of the telephone channel (Hz).
        peak_dbfs_range: Peak level of the final clip (dB relative to full scale).
    """

    speed_range: tuple[float, float] = (0.85, 1.15)
    reverb_probability: float = 0.5
    rt60_range: tuple[float, float] = (0.15, 0.8)
    direct_to_reverb_db: tuple[float, float] = (0.0, 12.0)
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    noise_colours: tuple[str, ...] = ("white", "pink", "brown")
    telephone_probability: float = 0.5
    telephone_band: tuple[float, float] = (300.0, 3400.0)
    peak_dbfs_range: tuple[float, float] = (-30.0, -1.0)

    def __post_init__(self) -> None:
        for name in ("speed_range", "rt60_range", "direct_to_reverb_db", "snr_db_range", "telephone_band",
                     "peak_dbfs_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"SpeechChannel.{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.speed_range[0] <= 0 or self.rt60_range[0] <= 0:
            raise ValueError("SpeechChannel: speed factors and RT60 must be positive")
        if self.peak_dbfs_range[1] > 0:
            raise ValueError(f"SpeechChannel.peak_dbfs_range must be <= 0 dBFS, got {self.peak_dbfs_range}")
        unknown = set(self.noise_colours) - set(NOISE_COLOURS)
        if unknown or not self.noise_colours:
            raise ValueError(f"SpeechChannel.noise_colours must be among {sorted(NOISE_COLOURS)}, got "
                             f"{self.noise_colours}")

    @property
    def tag(self) -> str:
        """``v<version>-<hash of the ranges>``: names the cache folder of clips made with it."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"v{CHANNEL_VERSION}-{digest}"


#: Named channels accepted by ``SpokenWordsDataset(augment=...)``.
CHANNELS = {"realistic": SpeechChannel()}


def resolve_channel(augment: str | SpeechChannel | None) -> SpeechChannel | None:
    """``None`` / ``"none"`` → no channel (clean clips); a name of :data:`CHANNELS`; or an instance."""
    if augment is None or augment == "none" or augment is False:
        return None
    if isinstance(augment, SpeechChannel):
        return augment
    if augment is True:
        return CHANNELS["realistic"]
    if isinstance(augment, str) and augment in CHANNELS:
        return CHANNELS[augment]
    raise ValueError(f"augment must be None, 'none', one of {sorted(CHANNELS)} or a SpeechChannel, got {augment!r}")


def change_speed(waveform: np.ndarray, factor: float) -> np.ndarray:
    """Play ``waveform`` ``factor`` times faster (tempo and pitch together) by resampling."""
    hundredths = int(round(factor * 100))
    if hundredths == 100:
        return waveform
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)), hundredths, 100)
    return out.numpy()


def synthetic_room_response(rng: np.random.Generator, sample_rate: int, rt60: float,
                            direct_to_reverb_db: float) -> np.ndarray:
    """A room impulse response: a unit direct path, then Gaussian noise decaying by 60 dB in ``rt60`` s.

    The tail is scaled so that the direct path carries ``direct_to_reverb_db`` dB more energy.
    """
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(1, length) / sample_rate
    tail = rng.standard_normal(length - 1) * np.exp(-6.908 * t / rt60)
    tail *= np.sqrt(10 ** (-direct_to_reverb_db / 10) / max(float(np.sum(tail ** 2)), 1e-12))
    return np.concatenate([[1.0], tail]).astype(np.float32)


def reverberate(waveform: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Convolve with a room response (``torchaudio.functional.fftconvolve``), keeping the tail."""
    out = AF.fftconvolve(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)),
                         torch.from_numpy(response))
    return out.numpy()


def coloured_noise(rng: np.random.Generator, num_samples: int, colour: str) -> np.ndarray:
    """Unit-power noise with a ``1/f^alpha`` power spectrum (white 0, pink 1, brown 2)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    spectrum *= frequencies ** (-NOISE_COLOURS[colour] / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)).astype(np.float32)


def telephone(waveform: np.ndarray, sample_rate: int, band: tuple[float, float]) -> np.ndarray:
    """A narrow-band telephone channel: down to 8 kHz, band-pass, 8-bit μ-law, back to ``sample_rate``."""
    x = AF.resample(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)), sample_rate,
                    TELEPHONE_RATE)
    x = AF.highpass_biquad(x, TELEPHONE_RATE, band[0])
    x = AF.lowpass_biquad(x, TELEPHONE_RATE, band[1])
    x = AF.mu_law_decoding(AF.mu_law_encoding(x.clamp(-1.0, 1.0), 256), 256)
    out = AF.resample(x, TELEPHONE_RATE, sample_rate).numpy()
    return out[:len(waveform)] if len(out) >= len(waveform) else np.pad(out, (0, len(waveform) - len(out)))


def apply_channel(speech: np.ndarray, num_samples: int, sample_rate: int, channel: SpeechChannel,
                  rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Put a trimmed word through ``channel``; returns a clip of exactly ``num_samples`` and the draws.

    Args:
        speech: The word, without edge silence (float, about [-1, 1]).
        num_samples: Length of the clip (the dataset's ``clip_seconds`` × rate): the word is placed
            at a random offset in it (at 0 when it does not fit; its end is then cut).
        sample_rate: Sampling rate of ``speech`` and of the clip.
        channel: The ranges to draw from.
        rng: Generator of every draw (the only source of randomness).

    Returns:
        ``(clip, draws)``; ``draws`` holds what was drawn (``speed_factor``, ``rt60`` (0 without room),
        ``lead_seconds``, ``snr_db``, ``noise``, ``telephone``, ``peak_dbfs``).
    """
    def uniform(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(bounds[0], bounds[1]))

    draws: dict[str, Any] = {"speed_factor": round(uniform(channel.speed_range), 2)}
    x = change_speed(speech.astype(np.float32), draws["speed_factor"])
    draws["rt60"] = 0.0
    if rng.random() < channel.reverb_probability:
        draws["rt60"] = round(uniform(channel.rt60_range), 3)
        x = reverberate(x, synthetic_room_response(rng, sample_rate, draws["rt60"],
                                                   uniform(channel.direct_to_reverb_db)))
    spoken = min(len(x), num_samples)
    speech_power = float(np.mean(x[:spoken] ** 2)) if spoken else 0.0
    lead = int(rng.integers(0, num_samples - spoken + 1))
    clip = np.zeros(num_samples, dtype=np.float32)
    clip[lead:lead + spoken] = x[:spoken]
    draws["lead_seconds"] = round(lead / sample_rate, 3)
    draws["snr_db"] = round(uniform(channel.snr_db_range), 1)
    draws["noise"] = str(channel.noise_colours[int(rng.integers(len(channel.noise_colours)))])
    noise = coloured_noise(rng, num_samples, draws["noise"])
    clip += noise * np.float32(np.sqrt(max(speech_power, 1e-10) / 10 ** (draws["snr_db"] / 10)))
    draws["telephone"] = bool(rng.random() < channel.telephone_probability)
    if draws["telephone"]:
        clip = telephone(clip / max(float(np.abs(clip).max()), 1e-9), sample_rate, channel.telephone_band)
    draws["peak_dbfs"] = round(uniform(channel.peak_dbfs_range), 1)
    clip = clip * np.float32(10 ** (draws["peak_dbfs"] / 20) / max(float(np.abs(clip).max()), 1e-9))
    return clip.astype(np.float32), draws
