"""Audio loading: the 16-bit PCM WAV fast path against FFmpeg (PyAV) decoding, same files, same process.

Run: PYTHONPATH=. python benchmarks/bench_audio_decode.py [--clips 300] [--rounds 5]

Writes 16-bit PCM WAVs at 16 kHz into a temporary folder (1 s clips like the built-in spoken
digits and 10 s clips like AudioSet), then times, in alternating rounds (medians of per-round
ratios, CPU time of this process, insensitive to other jobs on a shared machine):

* decoding only: :func:`m2pt.data.audio.decode_audio` on a path (fast path) and on an open file
  (the PyAV path it had before);
* one item of an uncached training set: ``AudioListDataset`` with AudioMAE's training transform
  (Kaldi fbank 128 bins, SpecAugment), which decodes every clip again every epoch.

Checks that both paths give the same samples, bit for bit, before timing.
"""
import argparse
import statistics
import tempfile
import time
import wave
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import m2pt.data.audio as audio
from m2pt.data import AudioListDataset
from m2pt.models import FbankTransform, SpecAugment

RATE = 16000


def write_clips(folder: Path, count: int, seconds: float, seed: int = 0) -> Path:
    """``count`` clips of filtered noise as 16-bit PCM WAVs, and a list file naming them."""
    rng = np.random.default_rng(seed)
    lines = ["path,label"]
    for index in range(count):
        samples = np.cumsum(rng.normal(size=int(seconds * RATE))) * 0.01
        pcm = (np.clip(samples - samples.mean(), -1, 1) * 32767).astype("<i2")
        with wave.open(str(folder / f"{index:05d}.wav"), "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(RATE)
            file.writeframes(pcm.tobytes())
        lines.append(f"{index:05d}.wav,{'ab'[index % 2]}")
    (folder / "list.csv").write_text("\n".join(lines) + "\n")
    return folder / "list.csv"


def pyav_only():
    """A context in which decode_audio takes the FFmpeg path for every file."""
    return mock.patch.object(audio, "read_pcm_wav", lambda path, rate: None)


def cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def compare(name: str, fast, slow, rounds: int, items: int) -> None:
    fast(), slow()  # warm-up (page cache, FFmpeg's first open)
    ratios, fast_times, slow_times = [], [], []
    for round_index in range(rounds):
        pair = [("fast", fast), ("slow", slow)]
        for side, fn in (pair if round_index % 2 == 0 else pair[::-1]):
            (fast_times if side == "fast" else slow_times).append(cpu_time(fn))
        ratios.append(slow_times[-1] / fast_times[-1])
    fast_ms, slow_ms = (1e3 * statistics.median(t) / items for t in (fast_times, slow_times))
    print(f"  {name}: PyAV {slow_ms:.3f} ms, fast path {fast_ms:.3f} ms per clip (CPU), "
          f"speed-up x{statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads 1, {args.clips} clips per size, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds, target_length in ((1.0, 96), (10.0, 1024)):
            folder = Path(tmp) / f"{seconds:g}s"
            folder.mkdir()
            list_file = write_clips(folder, args.clips, seconds)
            paths = sorted(folder.glob("*.wav"))
            for path in paths:
                with open(path, "rb") as file:
                    assert np.array_equal(audio.decode_audio(path), audio.decode_audio(file)), path
            dataset = AudioListDataset(list_file, clip_seconds=seconds, transform=FbankTransform(
                target_length=target_length, num_mel_bins=128, spec_augment=SpecAugment(48, 192)).train())

            def decode_all():
                for path in paths:
                    audio.decode_audio(path)

            def load_all():
                for index in range(len(dataset)):
                    dataset[index]

            def slow(fn):
                def run():
                    with pyav_only():
                        fn()
                return run

            print(f"{seconds:g} s clips (identical samples on both paths: yes)")
            compare("decode", decode_all, slow(decode_all), args.rounds, len(paths))
            compare(f"dataset item (decode + fbank {target_length}x128 + SpecAugment)", load_all, slow(load_all),
                    args.rounds, len(paths))


if __name__ == "__main__":
    main()
