"""Spoken words (digits "zero".."nine" by default) synthesised offline with ``espeak-ng``.

Every clip is one word said by one *voice* = an English accent (``en-us``, ``en-gb-scotland``,
...) combined with a voice *variant* (``m3``, ``f2``, ``klatt4``, ...), at a random speed
(words per minute) and pitch. The split is by variant: a seeded ``test_fraction`` of the
variants is used only for the test split, so test speakers never occur in training.

Clips are resampled to 16 kHz mono, trimmed of leading/trailing silence, written as 16-bit
wav files with a ``<split>.csv`` list (``path,label``), and read back through
:class:`m2pt.data.audio.AudioListDataset`, the loader users' own clips go through.

By default the clips are clean (the synthesiser's output as is). ``augment="realistic"`` puts
every clip (train and test) through recording conditions drawn per clip: speed and pitch by
resampling, a synthetic room, random leading/trailing silence, background noise, a telephone
channel, a random level (:mod:`m2pt.data.builtin.speech_channel`). The words, voices, espeak
speeds and pitches are the same as those of the clean clips with the same seed; augmented
clips are cached in their own folder, named after the channel's version and ranges.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from m2pt.data.audio import SAMPLE_RATE, AudioListDataset, decode_audio
from m2pt.data.cache import PathLike, data_root, generating_folder
from m2pt.data.builtin.speech_channel import SpeechChannel, apply_channel, resolve_channel
from m2pt.data.errors import DatasetError, MissingSystemPackageError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "adam", "Alex", "Andy", "annie",
            "aunty", "belinda", "benjamin", "boris", "david", "ed", "edward", "Gene", "john",
            "linda", "max", "Michael", "paul", "quincy", "robert", "steph", "travis", "victor")
SPEED_RANGE = (130, 230)
PITCH_RANGE = (15, 85)
SILENCE_LEVEL = 0.02


def espeak_binary() -> str:
    """Return the path of ``espeak-ng``.

    Raises:
        MissingSystemPackageError: When it is not installed.
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise MissingSystemPackageError(
            "espeak-ng is not installed; the spoken-words dataset needs it: "
            "sudo apt-get install espeak-ng")
    return binary


def split_variants(seed: int, test_fraction: float) -> dict[str, list[str]]:
    """Return the voice variants of each split (disjoint, seeded)."""
    order = np.random.default_rng(seed).permutation(len(VARIANTS))
    num_test = max(1, round(test_fraction * len(VARIANTS)))
    return {"test": sorted(VARIANTS[i] for i in order[:num_test]),
            "train": sorted(VARIANTS[i] for i in order[num_test:])}


def synthesise(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """Say ``word`` with espeak-ng; return a 16 kHz mono waveform without edge silence."""
    result = subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        capture_output=True, check=True)
    waveform = decode_audio(io.BytesIO(result.stdout), SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(waveform) > SILENCE_LEVEL * np.abs(waveform).max())
    return waveform[loud[0]:loud[-1] + 1] if len(loud) else waveform


def write_wav(path: Path, waveform: np.ndarray) -> None:
    """Write a mono 16-bit wav at 16 kHz."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SAMPLE_RATE)
        file.writeframes(pcm.tobytes())


#: Keys of the per-clip draws of a channel, as written in ``<split>.csv`` of augmented clips.
CHANNEL_COLUMNS = ("speed_factor", "rt60", "lead_seconds", "snr_db", "noise", "telephone", "peak_dbfs")
_CHANNEL_STREAM = 7919


def generate_spoken_words(destination: Path, words: Sequence[str], sizes: dict[str, int],
                          seed: int, test_fraction: float, channel: SpeechChannel | None = None,
                          clip_seconds: float = 1.0) -> None:
    """Synthesise ``sizes[split]`` clips per split (balanced over words) into ``destination``.

    With a ``channel``, each clip is put through it with its own generator, seeded by
    ``(seed, split, clip number)``: the clips do not depend on thread scheduling.
    """
    espeak_binary()
    variants = split_variants(seed, test_fraction)
    jobs = []
    for split_number, (split, size) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, split_number])
        for number in range(size):
            label = number % len(words)
            voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{rng.choice(variants[split])}"
            jobs.append((split, f"{split}/{number:05d}_{words[label]}.wav", words[label], voice,
                         int(rng.integers(*SPEED_RANGE)), int(rng.integers(*PITCH_RANGE)),
                         (seed, split_number, number, _CHANNEL_STREAM)))
        (destination / split).mkdir()
    num_samples = round(clip_seconds * SAMPLE_RATE)

    def run(job: tuple) -> str:
        _, path, word, voice, speed, pitch, stream = job
        waveform = synthesise(word, voice, speed, pitch)
        if channel is None:
            write_wav(destination / path, waveform)
            return ""
        clip, draws = apply_channel(waveform, num_samples, SAMPLE_RATE, channel, np.random.default_rng(stream))
        write_wav(destination / path, clip)
        return ",".join(str(draws[column]) for column in CHANNEL_COLUMNS)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        extras = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="espeak-ng spoken words",
                           unit="clip"))
    header = "path,label,voice,speed,pitch" + ("," + ",".join(CHANNEL_COLUMNS) if channel else "")
    for split in sizes:
        lines = [header] + [
            f"{path},{word},{voice},{speed},{pitch}" + ("," + extra if channel else "")
            for (job_split, path, word, voice, speed, pitch, _), extra in zip(jobs, extras) if job_split == split]
        (destination / f"{split}.csv").write_text("\n".join(lines) + "\n")
    meta: dict = {"words": list(words), "seed": seed, "variants": variants, "accents": ACCENTS}
    if channel is not None:
        meta["channel"] = {**asdict(channel), "tag": channel.tag, "clip_seconds": clip_seconds}
    (destination / "meta.json").write_text(json.dumps(meta, indent=2))


class SpokenWordsDataset(AudioListDataset):
    """Built-in spoken words; returns ``(waveform [1, S], label)`` at 16 kHz.

    Args:
        split: ``"train"`` or ``"test"`` (``"val"`` means ``"test"``).
        root: Data cache folder (default ``$M2PT_DATA`` or ``~/.cache/m2pt/data``).
        seed: Seed of voices, speeds, pitches and the variant split.
        train_size: Number of training clips (balanced over the words).
        test_size: Number of test clips.
        words: The class words, in label order.
        test_fraction: Fraction of voice variants reserved for the test split.
        clip_seconds: Fixed clip length (trimmed words last about 0.3-0.8 s).
        transform: Optional callable applied to the waveform (e.g. a fbank transform).
        random_crop, roll, mixup: Training augmentation, see ``AudioListDataset``.
        augment: ``None`` / ``"none"`` (default): clean clips. ``"realistic"`` (or a
            :class:`~m2pt.data.builtin.speech_channel.SpeechChannel`): clips put through recording
            conditions (speed, room, silence, noise, telephone, level), fixed per clip by ``seed``
            and cached apart from the clean ones; the split by speaker is unchanged.
    """

    def __init__(self, split: str = "train", root: PathLike | None = None, seed: int = 0,
                 train_size: int = 800, test_size: int = 200,
                 words: Sequence[str] = DIGIT_WORDS, test_fraction: float = 0.2,
                 clip_seconds: float = 1.0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 random_crop: bool = False, roll: bool = False, mixup: float = 0.0,
                 augment: str | SpeechChannel | None = None) -> None:
        split = {"val": "test"}.get(split, split)
        if split not in ("train", "test"):
            raise DatasetError(f"split must be 'train' or 'test', got '{split}'")
        try:
            channel = resolve_channel(augment)
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        words = tuple(words)
        name = f"{'-'.join(words) if words != DIGIT_WORDS else 'digits'}_train{train_size}" \
               f"_test{test_size}_testfrac{test_fraction:g}_seed{seed}"
        if channel is not None:  # the clip length shapes the silences, so it names the folder too
            name += f"_clip{clip_seconds:g}s_aug-{channel.tag}"
        self.folder = data_root(root) / "spoken_words" / name
        self.channel = channel
        if not self.folder.is_dir():
            with generating_folder(self.folder) as tmp:
                generate_spoken_words(tmp, words, {"train": train_size, "test": test_size},
                                      seed, test_fraction, channel=channel, clip_seconds=clip_seconds)
        super().__init__(self.folder / f"{split}.csv", clip_seconds=clip_seconds,
                         classes=words, multi_label=False, random_crop=random_crop,
                         transform=transform, roll=roll, mixup=mixup)
