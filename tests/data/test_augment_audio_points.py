"""AudioMAE's waveform mixup and roll, Point-MAE's scale-and-translate and test voting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pt.data import AudioListDataset
from m2pt.data.augment.pipelines import pipeline_options, split_options, wrap_split
from m2pt.data.augment.points import ScaleAndTranslate, VotedPoints
from m2pt.data.seeding import seeded_rngs
from tests.data.conftest import write_wav


def _audio_list(tmp_path):
    write_wav(tmp_path / "low.wav", 0.25, rate=16000, frequency=200.0)
    write_wav(tmp_path / "high.wav", 0.25, rate=16000, frequency=3000.0)
    (tmp_path / "list.csv").write_text("path,label\nlow.wav,low\nhigh.wav,high\n")
    return tmp_path / "list.csv"


def test_audiomae_mixup_mixes_waveforms_and_targets_with_one_weight(tmp_path):
    plain = AudioListDataset(_audio_list(tmp_path), clip_seconds=0.25)
    mixed = AudioListDataset(tmp_path / "list.csv", clip_seconds=0.25, mixup=1.0)
    low, high = plain[0][0][0], plain[1][0][0]  # items: low.wav, high.wav; classes sorted: high=0, low=1
    seen_partner = set()
    for seed in range(12):
        with seeded_rngs(seed):
            clip, target = mixed[0]
        assert target.dtype == torch.float32 and target.sum().item() == pytest.approx(1.0)
        weight = target[1].item()  # share of the item itself ("low")
        partner = high if target[0] > 0 else low
        torch.testing.assert_close(clip[0], weight * low + (1 - weight) * partner, atol=1e-6, rtol=0)
        seen_partner.add(bool(target[0] > 0))
    assert seen_partner == {True, False}  # partners are drawn at random, itself included


def test_audiomae_roll_shifts_and_scales_the_waveform(tmp_path):
    plain = AudioListDataset(_audio_list(tmp_path), clip_seconds=0.25)
    rolled = AudioListDataset(tmp_path / "list.csv", clip_seconds=0.25, roll=True)
    original = plain[0][0][0].numpy()
    with seeded_rngs(5):
        clip = rolled[0][0][0].numpy()
    with seeded_rngs(5):  # the draws AudioMAE makes: a shift, then a gain of Beta(10, 10) + 0.5
        shift, gain = np.random.randint(len(original)), np.random.beta(10, 10) + 0.5
    assert shift != 0 and 0.5 < gain < 1.5
    np.testing.assert_allclose(clip, np.roll(original, shift) * gain, atol=1e-6)
    assert plain[0][1] == rolled[0][1] == 1  # targets untouched without mixup ("low" is class 1)


def test_point_scale_and_translate_per_axis_and_votes():
    points = torch.randn(64, 3)
    with seeded_rngs(0):
        moved = ScaleAndTranslate()(points)
    scale = (moved - moved.mean(0)).std(0) / (points - points.mean(0)).std(0)
    assert ((scale > 2 / 3 - 1e-4) & (scale < 1.5 + 1e-4)).all() and not torch.allclose(scale, scale[0].expand(3))
    voted = VotedPoints([(points, 4)], votes=3)
    assert voted.num_views == 3 and voted.view_reduction == "logits"
    with seeded_rngs(1):
        views, label = voted[0]
    assert views.shape == (3, 64, 3) and label == 4 and not torch.equal(views[0], views[1])


def test_pipeline_options_per_modality_and_user_overrides():
    assert pipeline_options("image", "none", True) == {}
    assert pipeline_options("image", "mae", False) == {"augment": "mae"}
    assert pipeline_options("video", "videomae", False) == {"test_clips": 5, "test_crops": 3}
    assert pipeline_options("video", "videomae", True)["temporal_sampling"] == "random"
    assert pipeline_options("audio", "audiomae", True) == {"roll": True, "mixup": 0.5}
    assert isinstance(pipeline_options("point", "pointmae", True)["transform"], ScaleAndTranslate)
    with pytest.raises(ValueError, match="not a image pipeline"):
        pipeline_options("image", "videomae", True)
    own, around = split_options("point", {"num_points": 32, "test_votes": 4}, train=False)
    assert own == {"num_points": 32} and around == {"test_votes": 4}
    assert split_options("point", {"num_points": 32, "test_votes": 4}, train=True) == ({"num_points": 32}, {})
    assert split_options("video", {"test_clips": 2, "num_frames": 4}, train=True) == ({"num_frames": 4}, {})
    assert split_options("video", {"test_clips": 2}, train=False) == ({"test_clips": 2}, {})
    assert isinstance(wrap_split([(torch.zeros(4, 3), 0)], "point", False, around), VotedPoints)
    assert isinstance(wrap_split([(torch.zeros(4, 3), 0)], "point", True, around), list)
