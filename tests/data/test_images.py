import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from m2pt.data import DatasetError, ImageFolderDataset, MissingSystemPackageError
from m2pt.data.builtin.fashion_mnist import find_fashion_mnist_folder, stratified_subset
from m2pt.data.builtin.idx import read_idx


def _image_tree(root, split="train", per_class=3, mode="RGB", size=(20, 12)):
    for name, colour in (("cat", 40), ("dog", 200)):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new(mode, size, colour if mode == "L" else (colour, 0, 255 - colour)).save(folder / f"{i}.png")


def test_image_folder_resizes_normalises_and_counts(tmp_path):
    _image_tree(tmp_path, "val", mode="L")
    dataset = ImageFolderDataset(tmp_path, "test", image_size=16, channels=3)
    image, label = dataset[0]
    assert image.shape == (3, 16, 16) == dataset.sample_shape and label == 0
    expected = (40 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(image[:, 8, 8], expected, atol=1e-5)
    assert dataset.classes == ["cat", "dog"] and dataset.class_counts() == {"cat": 3, "dog": 3}
    assert "cat  3" in dataset.describe()
    grey, _ = ImageFolderDataset(tmp_path, "val", image_size=8, channels=1)[5]
    assert grey.shape == (1, 8, 8) and torch.allclose(grey, torch.full_like(grey, (200 / 255 - 0.5) / 0.5), atol=1e-5)


def test_corrupt_image_is_skipped(tmp_path):
    _image_tree(tmp_path, per_class=12)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"not a png")
    dataset = ImageFolderDataset(tmp_path, image_size=8, max_bad_fraction=0.1)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    assert batch[0].shape == (24, 3, 8, 8)
    assert dataset.tracker.bad_paths == [str(tmp_path / "train" / "cat" / "0.png")]


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no 'val' folder"):
        ImageFolderDataset(tmp_path, "val")
    (tmp_path / "train" / "empty_class").mkdir()
    with pytest.raises(DatasetError, match="one sub-folder per class"):
        ImageFolderDataset(tmp_path, "train")


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    (gzip.open if compress else open)(path, "wb").write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx(tmp_path, compress):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    path = tmp_path / ("x.gz" if compress else "x")
    _write_idx(path, images, compress)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_rejects_truncated_files(tmp_path):
    path = tmp_path / "x"
    _write_idx(path, np.zeros((4, 5), dtype=np.uint8), False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="damaged"):
        read_idx(path)


def test_stratified_subset_is_balanced_and_deterministic():
    labels = np.repeat(np.arange(10), 30)
    subset = stratified_subset(labels, 45, seed=1)
    assert len(subset) == 45 and sorted(np.bincount(labels[subset])) == [4] * 5 + [5] * 5
    np.testing.assert_array_equal(subset, stratified_subset(labels, 45, seed=1))
    assert not np.array_equal(subset, stratified_subset(labels, 45, seed=2))


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(MissingSystemPackageError, match="apt-get install dataset-fashion-mnist"):
        find_fashion_mnist_folder(tmp_path)
