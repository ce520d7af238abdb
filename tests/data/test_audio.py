import json

import pytest
import torch

from m2pt.data import AudioListDataset, DatasetError, TooManyBadFilesError
from tests.data.conftest import write_wav


def test_csv_single_label_resampled_downmixed_and_fixed_length(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav", 0.5, rate=22050, channels=2)
    write_wav(tmp_path / "clips" / "b.wav", 2.0, rate=8000)
    (tmp_path / "list.csv").write_text("path,label\nclips/a.wav,dog\nclips/b.wav,cat\n")
    dataset = AudioListDataset(tmp_path / "list.csv", clip_seconds=1.0,
                               transform=lambda w: w * 2)
    assert dataset.classes == ["cat", "dog"] and not dataset.multi_label
    short, label = dataset[0]
    assert short.shape == (1, 16000) == dataset.sample_shape and label == 1
    assert 0.9 < short[0, :7900].abs().max() <= 1.01  # 0.5 amplitude, doubled by transform
    assert short[0, 8100:].abs().max() == 0  # 0.5 s of tone, then zero padding
    long, _ = dataset[1]
    assert long.shape == (1, 16000) and long[0, -100:].abs().max() > 0.5


def test_audioset_json_multi_label_with_class_index(tmp_path):
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n2,/m/0ytgt,Child\n')
    for name in ("x.wav", "y.wav"):
        write_wav(tmp_path / name, 0.2)
    (tmp_path / "eval.json").write_text(json.dumps({"data": [
        {"wav": "x.wav", "labels": "/m/09x0r,/m/0ytgt"}, {"wav": "y.wav", "labels": "/m/05zppz"}]}))
    dataset = AudioListDataset(tmp_path / "eval.json", clip_seconds=0.25,
                               class_index_csv=tmp_path / "class_labels_indices.csv")
    assert dataset.multi_label and dataset.classes[1] == "Male speech, man speaking"
    waveform, target = dataset[0]
    assert waveform.shape == (1, 4000)
    assert torch.equal(target, torch.tensor([1.0, 0.0, 1.0]))
    assert dataset.class_counts() == {"Speech": 1, "Male speech, man speaking": 1, "Child": 1}


def test_unquoted_multi_label_csv_row(tmp_path):
    write_wav(tmp_path / "a.wav", 0.1)
    (tmp_path / "l.csv").write_text('a.wav,"dog,cat"\na.wav,bird,cat\n')
    dataset = AudioListDataset(tmp_path / "l.csv", clip_seconds=0.1)
    assert dataset.multi_label and dataset.classes == ["bird", "cat", "dog"]
    assert dataset.targets == [[1, 2], [0, 1]]


def test_garbage_wav_is_skipped_then_too_many_raise(tmp_path):
    lines = ["path,label"]
    for i in range(20):
        write_wav(tmp_path / f"{i}.wav", 0.1)
        lines.append(f"{i}.wav,{'yes' if i % 2 else 'no'}")
    (tmp_path / "3.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (tmp_path / "list.csv").write_text("\n".join(lines))
    dataset = AudioListDataset(tmp_path / "list.csv", clip_seconds=0.1)
    waveform, label = dataset[3]
    assert label == 0 and waveform.abs().max() > 0  # item 4 ("no") stands in for item 3
    assert dataset.tracker.bad_paths == [str(tmp_path / "3.wav")]
    (tmp_path / "5.wav").write_bytes(b"")
    with pytest.raises(TooManyBadFilesError, match="5.wav"):
        dataset[5]


def test_audio_list_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        AudioListDataset(tmp_path / "missing.csv")
    (tmp_path / "l.csv").write_text("path,label\nnope.wav,dog\n")
    with pytest.raises(DatasetError, match="missing files.*nope.wav"):
        AudioListDataset(tmp_path / "l.csv")
    write_wav(tmp_path / "a.wav", 0.1)
    (tmp_path / "l.csv").write_text("path,label\na.wav,wolf\n")
    with pytest.raises(DatasetError, match="unknown or no labels.*wolf"):
        AudioListDataset(tmp_path / "l.csv", classes=["dog", "cat"])
    (tmp_path / "l.csv").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        AudioListDataset(tmp_path / "l.csv")
