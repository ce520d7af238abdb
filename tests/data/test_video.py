import pytest
import torch

from m2pt.data import DatasetError, TooManyBadFilesError, VideoListDataset
from m2pt.data.video import sample_frame_indices
from tests.data.conftest import brightness_ramp, write_mp4


def _levels(clip: torch.Tensor) -> list[int]:
    """Recover frame indices from a normalised clip made with ``brightness_ramp``."""
    grey = clip[0, :, 8, 8]  # mean 0, std 1 in the tests below
    return [round(float(v) * 255 / 20) for v in grey]


def test_sample_frame_indices():
    assert sample_frame_indices(20, 4, 2, "center") == [6, 8, 10, 12]
    assert sample_frame_indices(5, 4, 2, "center", "loop") == [0, 2, 4, 1]
    assert sample_frame_indices(5, 4, 2, "center", "pad") == [0, 2, 4, 4]
    assert sample_frame_indices(9, 3, 1, "uniform") == [0, 4, 8]
    torch.manual_seed(0)
    starts = {sample_frame_indices(30, 4, 2, "random")[0] for _ in range(50)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 30 - 7


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_list_file_decode_sampling_and_crop(tmp_path, codec):
    write_mp4(tmp_path / "videos" / "long clip.mp4", brightness_ramp(12), codec=codec)
    write_mp4(tmp_path / "videos" / "short.mp4", brightness_ramp(3), codec=codec)
    (tmp_path / "train.txt").write_text("videos/long clip.mp4 1\nvideos/short.mp4 0\n")
    dataset = VideoListDataset(tmp_path / "train.txt", num_frames=4, frame_stride=2,
                               image_size=16, classes=["a", "b"], mean=(0.0,) * 3, std=(1.0,) * 3)
    clip, label = dataset[0]
    assert clip.shape == (3, 4, 16, 16) == dataset.sample_shape and label == 1
    assert _levels(clip) == [2, 4, 6, 8]  # centred window of 7 frames in 12
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    looped, _ = dataset[1]
    assert _levels(looped) == [0, 2, 1, 0]  # 3 frames looped: 0, 2, 4%3, 6%3


def test_named_labels_and_normalisation(tmp_path):
    write_mp4(tmp_path / "a.mp4", brightness_ramp(4))
    (tmp_path / "list.txt").write_text("a.mp4,walking\na.mp4 running\n")
    dataset = VideoListDataset(tmp_path / "list.txt", num_frames=2, frame_stride=1, image_size=8)
    assert dataset.classes == ["running", "walking"] and dataset.targets == [1, 0]
    clip, _ = dataset[0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    assert torch.allclose(clip * std + mean, (clip * std + mean)[0:1].expand(3, -1, -1, -1), atol=0.03)


def test_truncated_mp4_is_skipped(tmp_path):
    lines = []
    for i in range(10):
        write_mp4(tmp_path / f"{i}.mp4", brightness_ramp(6))
        lines.append(f"{i}.mp4 {i % 2}")
    data = (tmp_path / "2.mp4").read_bytes()
    (tmp_path / "2.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "list.txt").write_text("\n".join(lines))
    dataset = VideoListDataset(tmp_path / "list.txt", num_frames=2, image_size=8, max_bad_fraction=0.1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5)
    clips, labels = next(iter(loader))
    assert clips.shape == (5, 3, 2, 8, 8) and labels.tolist() == [0, 1, 1, 1, 0]
    assert dataset.tracker.num_bad == 1
    (tmp_path / "4.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(TooManyBadFilesError, match="4.mp4"):
        dataset[4]


def test_video_list_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        VideoListDataset(tmp_path / "missing.txt")
    (tmp_path / "list.txt").write_text("gone.mp4 0\n")
    with pytest.raises(DatasetError, match="missing files.*gone.mp4"):
        VideoListDataset(tmp_path / "list.txt")
    write_mp4(tmp_path / "a.mp4", brightness_ramp(2))
    (tmp_path / "list.txt").write_text("a.mp4 5\n")
    with pytest.raises(DatasetError, match="outside the 2 classes"):
        VideoListDataset(tmp_path / "list.txt", classes=["x", "y"])
    (tmp_path / "list.txt").write_text("a.mp4 swim\n")
    with pytest.raises(DatasetError, match="unknown class names.*swim"):
        VideoListDataset(tmp_path / "list.txt", classes=["run"])
    (tmp_path / "list.txt").write_text("a.mp4\n")
    with pytest.raises(DatasetError, match="not '<path> <label>'"):
        VideoListDataset(tmp_path / "list.txt")
