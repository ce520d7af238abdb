import csv
import math

import pytest
import torch

from m2pt.data import (FashionMNISTDataset, MissingSystemPackageError, ModelNet40Dataset,
                       MovingDigitsDataset, ShapesDataset, SpokenWordsDataset, VideoListDataset,
                       AudioListDataset)
from m2pt.data.builtin import fashion_mnist, spoken_words
from m2pt.data.builtin.moving_digits import DIRECTIONS


def test_fashion_mnist_subset_cached_and_deterministic(tmp_path, monkeypatch):
    train = FashionMNISTDataset("train", root=tmp_path, train_size=30, test_size=20, seed=1)
    assert len(train) == 30 and set(train.class_counts().values()) == {3}
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.min() == pytest.approx(-0.2860 / 0.3530, abs=1e-4)
    monkeypatch.setattr(fashion_mnist, "generate_fashion_mnist",
                        lambda *a, **k: pytest.fail("regenerated a cached dataset"))
    again = FashionMNISTDataset("train", root=tmp_path, train_size=30, test_size=20, seed=1)
    assert torch.equal(again.images, train.images)
    padded = FashionMNISTDataset("val", root=tmp_path, train_size=30, test_size=20, seed=1,
                                 image_size=16, padding=2, channels=3)
    assert len(padded) == 20 and padded[0][0].shape == (3, 16, 16)


def test_fashion_mnist_uses_env_root_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("M2PT_DATA", str(tmp_path))
    a = FashionMNISTDataset("test", train_size=10, test_size=10, seed=0)
    b = FashionMNISTDataset("test", train_size=10, test_size=10, seed=5)
    assert a.folder.parent.parent == tmp_path and not torch.equal(a.images, b.images)


def test_spoken_words_split_by_voice_variant(tmp_path):
    train = SpokenWordsDataset("train", root=tmp_path, train_size=20, test_size=10, seed=0)
    test = SpokenWordsDataset("test", root=tmp_path, train_size=20, test_size=10, seed=0)
    assert isinstance(train, AudioListDataset) and train.classes[7] == "seven"
    assert train.class_counts() == dict.fromkeys(train.classes, 2)
    waveform, label = test[3]
    assert waveform.shape == (1, 16000) and label == 3 and waveform.abs().max() > 0.05

    def variants(split):
        with open(train.folder / f"{split}.csv") as file:
            return {row["voice"].split("+")[1] for row in csv.DictReader(file)}
    assert variants("train") and variants("test") and not variants("train") & variants("test")


def test_missing_espeak_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(spoken_words.shutil, "which", lambda name: None)
    with pytest.raises(MissingSystemPackageError, match="apt-get install espeak-ng"):
        SpokenWordsDataset(root=tmp_path, train_size=2, test_size=2)
    assert not any((tmp_path / "spoken_words").iterdir())  # nothing half-written is left


def test_shapes_in_modelnet_layout_and_deterministic(tmp_path):
    train = ShapesDataset("train", root=tmp_path / "a", train_size=20, test_size=10,
                          points_per_shape=128, seed=3)
    assert isinstance(train, ModelNet40Dataset) and train.num_classes == 10
    points, label = train[4]
    assert points.shape == (128, 3) and label == 4
    assert torch.isclose(points.norm(dim=1).max(), torch.tensor(1.0))
    same = ShapesDataset("train", root=tmp_path / "b", train_size=20, test_size=10,
                         points_per_shape=128, seed=3)
    other = ShapesDataset("train", root=tmp_path / "c", train_size=20, test_size=10,
                          points_per_shape=128, seed=4)
    assert torch.equal(same[4][0], points) and not torch.equal(other[4][0], points)
    assert len(ShapesDataset("test", root=tmp_path / "a", train_size=20, test_size=10,
                             points_per_shape=128, seed=3, num_points=64)[0][0]) == 64


def test_moving_digits_by_class(tmp_path):
    train = MovingDigitsDataset("train", root=tmp_path, train_size=20, test_size=10)
    assert isinstance(train, VideoListDataset) and train.classes[3] == "3"
    clip, label = train[13]
    assert clip.shape == (3, 8, 32, 32) and label == 3
    assert abs(float(clip.mean())) < 0.5  # normalised with the stored training statistics


def test_moving_digits_from_fashion_mnist(tmp_path):
    dataset = MovingDigitsDataset("test", root=tmp_path, train_size=10, test_size=10,
                                  digit_source="fashion_mnist", image_size=40, digit_size=20)
    assert dataset.classes[9] == "Ankle boot" and dataset[9][0].shape == (3, 8, 40, 40)
    assert [path.name for path in tmp_path.iterdir()] == ["moving_digits"]


def test_moving_digits_by_direction_move_that_way(tmp_path):
    dataset = MovingDigitsDataset("test", root=tmp_path, train_size=8, test_size=16,
                                  label_by="direction")
    assert dataset.classes == list(DIRECTIONS)
    for index in range(len(dataset)):
        clip, label = dataset[index]
        mass = (clip[0] - clip[0].min()).clamp(min=0)  # [T, H, W]
        rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        centre = [((mass[t] * rows).sum() / mass[t].sum(), (mass[t] * cols).sum() / mass[t].sum())
                  for t in (0, -1)]
        moved = (float(centre[0][0] - centre[1][0]), float(centre[1][1] - centre[0][1]))  # (up, right)
        angle = math.degrees(math.atan2(*moved)) % 360
        assert min(abs(angle - 45 * label), 360 - abs(angle - 45 * label)) < 22.5, (label, angle)
