"""VideoMAE's pipeline: multi-view test (clips x crops, averaged scores), clip-consistent augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m2pt.data import DatasetError, VideoListDataset
from m2pt.data.augment.video import VideoMAETrainTransform
from m2pt.data.seeding import seeded_rngs
from m2pt.data.video import decode_video_frames
from m2pt.models import create_model
from m2pt.train.finetuning import evaluate_model, view_logits
from tests.data.conftest import write_mp4

MEAN, STD = (0.45, 0.45, 0.45), (0.25, 0.25, 0.25)


def _patterned_clip(num_frames: int, seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frames with a horizontal gradient (so crops differ) and a per-frame brightness (so clips differ)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 150, width)[None, None, :, None]
    t = (np.arange(num_frames) * 8)[:, None, None, None]
    noise = rng.integers(0, 30, (1, height, width, 3))
    return np.broadcast_to(x + t + noise, (num_frames, height, width, 3)).clip(0, 255).astype(np.uint8)


@pytest.fixture
def video_list(tmp_path):
    lines = []
    for i in range(3):
        write_mp4(tmp_path / f"{i}.mp4", _patterned_clip(12, i))
        lines.append(f"{i}.mp4 {i % 3}")
    (tmp_path / "test.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "test.txt"


def _hand_views(path, clips_starts, crop_lefts, num_frames=4, stride=2, size=16):
    frames = decode_video_frames(path, lambda total: list(range(total)))
    frames = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    views = []
    for start in clips_starts:
        clip = frames[start:start + (num_frames - 1) * stride + 1:stride]
        clip = F.interpolate(clip, size=(16, 21), mode="bilinear", align_corners=False, antialias=True)
        for left in crop_lefts:
            views.append((clip[..., :, left:left + size].permute(1, 0, 2, 3) - mean) / std)
    return torch.stack(views)


def test_multi_view_test_averages_the_softmax_of_every_clip_and_crop(video_list):
    dataset = VideoListDataset(video_list, num_frames=4, frame_stride=2, image_size=16, mean=MEAN, std=STD,
                               test_clips=2, test_crops=3)
    assert dataset.num_views == 6 and dataset.sample_shape == (6, 3, 4, 16, 16)
    # 12 frames, a window of 7: clips start at 0 and 5; 16x21 frames: crops start at 0, 2 and 5.
    hand = [_hand_views(dataset.paths[i], [0, 5], [0, 2, 5]) for i in range(len(dataset))]
    for i, views in enumerate(hand):
        torch.testing.assert_close(dataset[i][0], views, atol=1e-6, rtol=0)
    torch.manual_seed(0)
    model = create_model("video", "tiny", num_classes=3, num_frames=4, img_size=16, patch_size=8,
                         embed_dim=32, depth=1, num_heads=2).eval()
    with torch.no_grad():
        probabilities = torch.stack([model(views).softmax(-1).mean(0) for views in hand])
    labels = torch.tensor(dataset.targets)
    expected_loss = F.nll_loss(probabilities.log(), labels).item()
    expected_top1 = 100 * (probabilities.argmax(1) == labels).float().mean().item()
    metrics = evaluate_model(model, dataset, torch.device("cpu"), batch_size=2)
    assert metrics["test_loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert metrics["top1"] == pytest.approx(expected_top1)
    with torch.no_grad():  # and it is not the single centre view
        centre = model(torch.stack([views[1] for views in hand]))
    assert F.cross_entropy(centre, labels).item() != pytest.approx(expected_loss, abs=1e-4)


def test_view_logits_reductions():
    model = torch.nn.Flatten()  # views of 2 numbers are their own logits
    x = torch.tensor([[[0.0, 2.0], [2.0, 0.0]]])
    torch.testing.assert_close(view_logits(model, x, 2, "logits"), torch.tensor([[1.0, 1.0]]))
    expected = torch.tensor([[0.0, 2.0], [2.0, 0.0]]).softmax(-1).mean(0, keepdim=True).log()
    torch.testing.assert_close(view_logits(model, x, 2, "softmax"), expected)
    with pytest.raises(ValueError, match="'softmax' or 'logits'"):
        view_logits(model, x, 2, "max")


def test_videomae_training_augmentation_is_one_crop_flip_and_rand_augment_for_all_frames():
    frames = np.broadcast_to(_patterned_clip(1, 0), (4, 24, 32, 3)).copy()  # four identical frames
    transform = VideoMAETrainTransform(16, MEAN, STD, random_erasing=0.0)
    outputs = []
    for seed in range(8):
        with seeded_rngs(seed):
            clip = transform(frames)
        assert clip.shape == (3, 4, 16, 16)
        for t in range(1, 4):  # identical frames stay identical: the same ops were applied to each
            torch.testing.assert_close(clip[:, t], clip[:, 0], atol=0, rtol=0)
        outputs.append(clip)
    assert len({round(float(o.sum()), 3) for o in outputs}) == 8, "different seeds must give different clips"
    with seeded_rngs(3):
        again = transform(frames)
    assert torch.equal(again, outputs[3])


def test_videomae_training_clips_from_the_dataset(video_list):
    dataset = VideoListDataset(video_list, num_frames=4, frame_stride=2, image_size=16, augment="videomae",
                               temporal_sampling="random")
    with seeded_rngs(0):
        a = dataset[0][0]
    with seeded_rngs(1):
        b = dataset[0][0]
    assert a.shape == b.shape == (3, 4, 16, 16) and not torch.equal(a, b)
    with pytest.raises(DatasetError, match="different splits"):
        VideoListDataset(video_list, augment="videomae", test_clips=2)
    with pytest.raises(DatasetError, match="not a video pipeline"):
        VideoListDataset(video_list, augment="mae")


def test_repeated_augmentation_gives_several_clips_of_one_video_to_the_batch(video_list):
    from m2pt.train.loader import KeyedBatches

    dataset = VideoListDataset(video_list, num_frames=4, frame_stride=2, image_size=16, augment="videomae",
                               repeats=2)
    assert dataset.sample_shape == (2, 3, 4, 16, 16)
    inputs, targets, bad = KeyedBatches(dataset, seed=0).__getitems__([(0, 0, 1), (0, 0, 2)])
    assert inputs.shape == (4, 3, 4, 16, 16) and targets.tolist() == [1, 1, 2, 2] and bad == {}
    assert not torch.equal(inputs[0], inputs[1]), "each repeat is augmented independently"
    with pytest.raises(DatasetError, match="repeated augmentation needs augment='videomae'"):
        VideoListDataset(video_list, repeats=2)
