import json

import h5py
import numpy as np
import pytest
import torch
import trimesh

from m2pt.data import (DatasetError, MeshFolderDataset, ModelNet40Dataset, ScanObjectNNDataset,
                       ShapeNetPartDataset, TooManyBadFilesError)
from m2pt.data.points import normalize_to_unit_sphere, select_points


def _modelnet_tree(root, rng, per_class=6, points=50):
    classes = ["airplane", "night_stand"]
    (root / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    ids = {"train": [], "test": []}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(1, per_class + 1):
            cloud = np.hstack([rng.normal(size=(points, 3)) * 3 + 5, rng.normal(size=(points, 3))])
            np.savetxt(root / name / f"{name}_{i:04d}.txt", cloud, fmt="%.6f", delimiter=",")
            ids["train" if i <= per_class - 2 else "test"].append(f"{name}_{i:04d}")
    for split, names in ids.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")


def test_normalize_and_select_points(rng):
    cloud = normalize_to_unit_sphere(rng.normal(size=(100, 3)) * 7 + 3)
    assert np.allclose(cloud.mean(0), 0, atol=1e-9) and np.isclose(np.linalg.norm(cloud, axis=1).max(), 1)
    assert select_points(10, 4, "first", 0).tolist() == [0, 1, 2, 3]
    picked = select_points(3, 8, "first", 0)
    assert len(picked) == 8 and set(picked) == {0, 1, 2}
    assert np.array_equal(select_points(50, 10, "random", 5), select_points(50, 10, "random", 5))


def test_modelnet_reads_split_and_classes(tmp_path, rng):
    _modelnet_tree(tmp_path, rng)
    train = ModelNet40Dataset(tmp_path, "train", num_points=32)
    test = ModelNet40Dataset(tmp_path, "test", num_points=64, point_selection="random")
    assert len(train) == 8 and len(test) == 4 and train.classes == ["airplane", "night_stand"]
    points, label = test[3]
    assert points.shape == (64, 3) == test.sample_shape and label == 1
    assert torch.isclose(points.norm(dim=1).max(), torch.tensor(1.0))
    assert torch.allclose(points.mean(0), torch.zeros(3), atol=1e-5)
    assert train.class_counts() == {"airplane": 4, "night_stand": 4}


def test_malformed_modelnet_line_is_skipped(tmp_path, rng):
    _modelnet_tree(tmp_path, rng, per_class=12)
    bad = tmp_path / "airplane" / "airplane_0002.txt"
    bad.write_text(bad.read_text().replace("\n", "\n1.0,2.0,oops\n", 1))
    dataset = ModelNet40Dataset(tmp_path, "train", num_points=16, max_bad_fraction=0.05)
    points, label = dataset[1]
    assert points.shape == (16, 3) and dataset.tracker.bad_paths == [str(bad)]
    (tmp_path / "airplane" / "airplane_0003.txt").write_text("1,2\n")
    with pytest.raises(TooManyBadFilesError, match="airplane_0003"):
        dataset[2]


def test_modelnet_errors(tmp_path, rng):
    with pytest.raises(DatasetError, match="does not exist"):
        ModelNet40Dataset(tmp_path / "none")
    _modelnet_tree(tmp_path, rng)
    (tmp_path / "modelnet40_train.txt").write_text("chair_0001\n")
    with pytest.raises(DatasetError, match="unknown classes.*chair"):
        ModelNet40Dataset(tmp_path, "train")
    (tmp_path / "modelnet40_train.txt").write_text("airplane_0099\n")
    with pytest.raises(DatasetError, match="missing files.*airplane_0099"):
        ModelNet40Dataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="'val' split file"):
        ModelNet40Dataset(tmp_path, "val")


def test_scanobjectnn_h5(tmp_path, rng):
    folder = tmp_path / "main_split"
    folder.mkdir()
    for split, count in (("training", 6), ("test", 3)):
        with h5py.File(folder / f"{split}_objectdataset_augmentedrot_scale75.h5", "w") as file:
            file["data"] = rng.normal(size=(count, 128, 3)).astype(np.float32)
            file["label"] = (np.arange(count) % 15).astype(np.int64)[:, None]
    dataset = ScanObjectNNDataset(tmp_path, "test", num_points=100)
    points, label = dataset[2]
    assert len(dataset) == 3 and points.shape == (100, 3) and label == 2 and dataset.num_classes == 15
    assert dataset.classes[2] == "box"
    (tmp_path / "broken_training.h5").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="expected one"):
        ScanObjectNNDataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="cannot read ScanObjectNN"):
        ScanObjectNNDataset(tmp_path / "broken_training.h5")


def _shapenet_part_tree(root, rng):
    (root / "synsetoffset2category.txt").write_text("Airplane\t02691156\nBag\t02773838\n")
    (root / "train_test_split").mkdir(parents=True)
    entries = {"train": [], "val": [], "test": []}
    for synset, parts in (("02691156", [0, 1, 2, 3]), ("02773838", [4, 5])):
        (root / synset).mkdir()
        for i, split in enumerate(["train", "train", "val", "test"]):
            cloud = rng.normal(size=(40, 6))
            labels = rng.choice(parts, size=(40, 1))
            np.savetxt(root / synset / f"shape{i}.txt", np.hstack([cloud, labels]), fmt="%.5f")
            entries[split].append(f"shape_data/{synset}/shape{i}")
    for split, items in entries.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(items))


def test_shapenet_part(tmp_path, rng):
    _shapenet_part_tree(tmp_path, rng)
    dataset = ShapeNetPartDataset(tmp_path, "trainval", num_points=64)
    assert len(dataset) == 6 and dataset.classes == ["Airplane", "Bag"]
    points, parts, object_class = dataset[5]
    assert points.shape == (64, 3) and parts.shape == (64,) and parts.dtype == torch.long
    assert object_class == 1 and set(parts.tolist()) <= set(dataset.parts_of_class(1))
    only_bags = ShapeNetPartDataset(tmp_path, "test", categories=["Bag"], num_points=8)
    assert len(only_bags) == 1 and only_bags[0][2] == 1
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    assert batch[0].shape == (4, 64, 3) and batch[1].shape == (4, 64)
    with pytest.raises(DatasetError, match="unknown ShapeNetPart categories"):
        ShapeNetPartDataset(tmp_path, "test", categories=["Rocket"])
    with pytest.raises(DatasetError, match="synsetoffset2category"):
        ShapeNetPartDataset(tmp_path / "train_test_split")


def test_mesh_folder_layouts_and_determinism(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "cube" / split).mkdir(parents=True)
        (tmp_path / "ball" / split).mkdir(parents=True)
        trimesh.creation.box(extents=(1, 2, 3)).export(tmp_path / "cube" / split / "a.ply")
        trimesh.creation.icosphere(subdivisions=4).export(tmp_path / "ball" / split / "b.obj")
    dataset = MeshFolderDataset(tmp_path, "test", num_points=256, seed=3)
    assert dataset.classes == ["ball", "cube"] and dataset.targets == [0, 1]
    cube, label = dataset[1]
    assert cube.shape == (256, 3) and label == 1
    again = MeshFolderDataset(tmp_path, "test", num_points=256, seed=3, cache=False)[1][0]
    assert torch.equal(cube, again)
    assert not torch.equal(cube, MeshFolderDataset(tmp_path, "test", num_points=256, seed=4)[1][0])
    sphere, _ = dataset[0]
    # On the unit sphere up to the offset of the sample centroid; a 1x2x3 box is far from it.
    assert sphere.norm(dim=1).min() > 0.85 and cube.norm(dim=1).min() < 0.6
    with pytest.raises(DatasetError, match="no 'val' folder"):
        MeshFolderDataset(tmp_path, "val")


def test_broken_mesh_is_skipped(tmp_path):
    for i in range(10):
        trimesh.creation.box().export(tmp_path / "train" / "cube" / f"{i}.obj") if (
            tmp_path / "train" / "cube").mkdir(parents=True, exist_ok=True) is None else None
    (tmp_path / "train" / "cube" / "5.obj").write_text("v 0 0 0\nv 1 0 0\n")
    dataset = MeshFolderDataset(tmp_path, "train", num_points=32, max_bad_fraction=0.1)
    assert dataset[5][0].shape == (32, 3) and dataset.tracker.num_bad == 1
    (tmp_path / "empty" / "train" / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no mesh files"):
        MeshFolderDataset(tmp_path / "empty", "train")
