import h5py
import numpy as np
import pytest
import trimesh
from PIL import Image

from m2pt.data import (AudioListDataset, DatasetError, FashionMNISTDataset, ImageFolderDataset,
                       MeshFolderDataset, ModelNet40Dataset, ScanObjectNNDataset,
                       ShapeNetPartDataset, ShapesDataset, VideoListDataset, build_dataset,
                       builtin_dataset)
from tests.data.conftest import brightness_ramp, write_mp4, write_wav


def test_builtin_routes_by_modality(tmp_path):
    image = builtin_dataset("image", "test", root=tmp_path, train_size=10, test_size=10)
    assert isinstance(image, FashionMNISTDataset) and len(image) == 10
    points = build_dataset("point_cloud", "builtin", "train", root=tmp_path, train_size=10,
                           test_size=10, points_per_shape=32)
    assert isinstance(points, ShapesDataset) and points[0][0].shape == (32, 3)
    with pytest.raises(DatasetError, match="unknown modality 'text'"):
        builtin_dataset("text")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*'builtin'"):
        build_dataset("video", tmp_path / "kinetics")


def test_detects_image_video_audio_formats(tmp_path):
    (tmp_path / "img" / "val" / "a").mkdir(parents=True)
    Image.new("RGB", (9, 9)).save(tmp_path / "img" / "val" / "a" / "x.png")
    assert isinstance(build_dataset("image", tmp_path / "img", "test", image_size=8), ImageFolderDataset)

    write_mp4(tmp_path / "vid" / "v.mp4", brightness_ramp(4))
    (tmp_path / "vid" / "val_list.txt").write_text("v.mp4 0\n")
    video = build_dataset("video", tmp_path / "vid", "val", num_frames=2, image_size=8)
    assert isinstance(video, VideoListDataset) and video[0][0].shape == (3, 2, 8, 8)
    with pytest.raises(DatasetError, match="no video list file for split 'train'"):
        build_dataset("video", tmp_path / "vid", "train")

    write_wav(tmp_path / "aud" / "w.wav", 0.1)
    (tmp_path / "aud" / "class_labels_indices.csv").write_text("index,mid,display_name\n0,/m/a,A\n")
    (tmp_path / "aud" / "eval.csv").write_text("path,labels\nw.wav,/m/a\n")
    audio = build_dataset("audio", tmp_path / "aud", "test", clip_seconds=0.1)
    assert isinstance(audio, AudioListDataset) and audio.multi_label and audio.classes == ["A"]


def test_detects_point_formats(tmp_path):
    modelnet = tmp_path / "modelnet"
    (modelnet / "cup").mkdir(parents=True)
    (modelnet / "modelnet40_shape_names.txt").write_text("cup\n")
    (modelnet / "modelnet40_train.txt").write_text("cup_0001\n")
    np.savetxt(modelnet / "cup" / "cup_0001.txt", np.random.rand(10, 6), delimiter=",")
    assert isinstance(build_dataset("point", modelnet, num_points=8), ModelNet40Dataset)

    shapenet = tmp_path / "shapenet"
    (shapenet / "train_test_split").mkdir(parents=True)
    (shapenet / "synsetoffset2category.txt").write_text("Mug\t03797390\n")
    (shapenet / "train_test_split" / "shuffled_val_file_list.json").write_text('["shape_data/03797390/m"]')
    (shapenet / "03797390").mkdir()
    np.savetxt(shapenet / "03797390" / "m.txt", np.hstack([np.random.rand(5, 6), np.full((5, 1), 36)]))
    assert isinstance(build_dataset("point", shapenet, "val", num_points=8), ShapeNetPartDataset)

    h5_file = tmp_path / "scan" / "test_objectdataset.h5"
    h5_file.parent.mkdir()
    with h5py.File(h5_file, "w") as file:
        file["data"], file["label"] = np.random.rand(2, 16, 3), np.array([0, 1])
    assert isinstance(build_dataset("point", tmp_path / "scan", "test", num_points=16), ScanObjectNNDataset)
    assert isinstance(build_dataset("point", h5_file, num_points=16), ScanObjectNNDataset)

    (tmp_path / "meshes" / "train" / "box").mkdir(parents=True)
    trimesh.creation.box().export(tmp_path / "meshes" / "train" / "box" / "b.ply")
    assert isinstance(build_dataset("point", tmp_path / "meshes", num_points=16), MeshFolderDataset)
