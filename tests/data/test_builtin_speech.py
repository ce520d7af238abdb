"""Built-in spoken digits through recording conditions (``augment="realistic"``)."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from m2pt.data import DatasetError, SpokenWordsDataset
from m2pt.data.audio import decode_audio
from m2pt.data.builtin.speech_channel import (CHANNEL_VERSION, SpeechChannel, apply_channel, coloured_noise,
                                              synthetic_room_response, telephone)

RATE = 16000


def _rows(dataset, split):
    with open(dataset.folder / f"{split}.csv") as file:
        return list(csv.DictReader(file))


def _band_energy(x, low, high):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    return spectrum[(freqs >= low) & (freqs < high)].sum() / spectrum.sum()


def test_clean_clips_stay_the_default_with_their_old_cache_folder(tmp_path):
    clean = SpokenWordsDataset("train", root=tmp_path, train_size=20, test_size=10, seed=0)
    assert clean.channel is None and clean.folder.name == "digits_train20_test10_testfrac0.2_seed0"
    augmented = SpokenWordsDataset("train", root=tmp_path, train_size=20, test_size=10, seed=0, augment="realistic")
    assert augmented.folder != clean.folder and f"aug-v{CHANNEL_VERSION}-" in augmented.folder.name
    # the same utterances (words, voices, espeak speed and pitch), through a channel
    keys = ("path", "label", "voice", "speed", "pitch")
    assert [{k: r[k] for k in keys} for r in _rows(clean, "train")] == \
           [{k: r[k] for k in keys} for r in _rows(augmented, "train")]
    rows = _rows(augmented, "train")
    assert {r["telephone"] for r in rows} == {"True", "False"} and len({r["noise"] for r in rows}) > 1
    assert any(float(r["rt60"]) > 0 for r in rows) and any(float(r["rt60"]) == 0 for r in rows)
    peaks = [float(r["peak_dbfs"]) for r in rows]
    for row, peak in zip(rows[:5], peaks):
        waveform = decode_audio(augmented.folder / row["path"])
        assert len(waveform) == RATE  # exactly one clip: silences and word inside it
        assert 20 * np.log10(np.abs(waveform).max()) == pytest.approx(peak, abs=0.2)
    # speaker-disjoint split kept
    train_variants = {r["voice"].split("+")[1] for r in rows}
    test = SpokenWordsDataset("test", root=tmp_path, train_size=20, test_size=10, seed=0, augment="realistic")
    assert not train_variants & {r["voice"].split("+")[1] for r in _rows(test, "test")}
    waveform, label = test[3]
    assert waveform.shape == (1, RATE) and label == 3


def test_augmented_clips_are_deterministic_given_the_seed(tmp_path):
    a = SpokenWordsDataset("train", root=tmp_path / "a", train_size=10, test_size=10, seed=1, augment="realistic")
    b = SpokenWordsDataset("train", root=tmp_path / "b", train_size=10, test_size=10, seed=1, augment="realistic")
    c = SpokenWordsDataset("train", root=tmp_path / "c", train_size=10, test_size=10, seed=2, augment="realistic")
    for i in range(10):
        assert np.array_equal(a[i][0].numpy(), b[i][0].numpy())
    assert not np.array_equal(a[0][0].numpy(), c[0][0].numpy())
    milder = dataclasses.replace(SpeechChannel(), telephone_probability=0.0)
    d = SpokenWordsDataset("train", root=tmp_path / "a", train_size=10, test_size=10, seed=1, augment=milder)
    assert d.folder != a.folder  # other ranges, other cache folder


def test_bad_augment_value_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(DatasetError, match="augment must be None, 'none', one of \\['realistic'\\]"):
        SpokenWordsDataset(root=tmp_path, train_size=2, test_size=2, augment="phone")
    assert not (tmp_path / "spoken_words").exists()
    with pytest.raises(ValueError, match="peak_dbfs_range must be <= 0 dBFS"):
        SpeechChannel(peak_dbfs_range=(-10.0, 3.0))
    with pytest.raises(ValueError, match="low <= high"):
        SpeechChannel(snr_db_range=(30.0, 5.0))


def test_telephone_channel_keeps_the_voice_band_only():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(RATE) * 0.1).astype(np.float32)
    y = telephone(x, RATE, (300.0, 3400.0))
    assert y.shape == x.shape
    assert _band_energy(x, 4000, 8000) > 0.45 and _band_energy(y, 4000, 8000) < 0.01
    assert _band_energy(y, 0, 150) < 0.01 and _band_energy(y, 500, 3000) > 0.7


def test_room_response_decays_by_60_db_over_rt60():
    response = synthetic_room_response(np.random.default_rng(0), RATE, rt60=0.4, direct_to_reverb_db=6.0)
    assert len(response) == int(0.4 * RATE) and response[0] == 1.0
    tail = response[1:]
    assert np.sum(tail ** 2) == pytest.approx(10 ** (-0.6), rel=1e-4)  # direct path 6 dB above the tail
    early, late = np.sqrt(np.mean(tail[:800] ** 2)), np.sqrt(np.mean(tail[-800:] ** 2))
    assert 20 * np.log10(early / late) == pytest.approx(60 * (0.4 - 0.05) / 0.4, abs=4.0)


def test_channel_places_the_word_with_silence_and_noise_at_the_drawn_snr():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / RATE)).astype(np.float32)
    channel = SpeechChannel(speed_range=(1.0, 1.0), reverb_probability=0.0, telephone_probability=0.0,
                            snr_db_range=(20.0, 20.0), noise_colours=("white",), peak_dbfs_range=(-6.0, -6.0))
    clip, draws = apply_channel(tone, RATE, RATE, channel, np.random.default_rng(3))
    lead = round(draws["lead_seconds"] * RATE)
    assert clip.shape == (RATE,) and draws["rt60"] == 0.0 and draws["telephone"] is False
    assert np.abs(clip).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    silence = np.concatenate([clip[:lead], clip[lead + 4000:]])
    word = clip[lead:lead + 4000]
    assert len(silence) == RATE - 4000
    assert 10 * np.log10(np.mean(word ** 2) / np.mean(silence ** 2)) == pytest.approx(20.0, abs=0.5)
    faster, draws = apply_channel(tone, RATE, RATE, dataclasses.replace(channel, speed_range=(1.25, 1.25)),
                                  np.random.default_rng(3))
    assert draws["speed_factor"] == 1.25  # 4000 samples played 1.25x faster: 3200 samples of tone
    loud = np.abs(faster) > 0.5 * np.abs(faster).max()
    assert 3000 < np.flatnonzero(loud)[-1] - np.flatnonzero(loud)[0] < 3300


def test_noise_colours_have_the_right_slope():
    rng = np.random.default_rng(0)
    white, brown = coloured_noise(rng, RATE, "white"), coloured_noise(rng, RATE, "brown")
    assert np.mean(white ** 2) == pytest.approx(1.0, rel=1e-3)
    assert _band_energy(white, 4000, 8000) == pytest.approx(0.5, abs=0.05)
    assert _band_energy(brown, 0, 200) > 0.9
