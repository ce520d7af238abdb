import pytest

from m2pt.data import BadFileTracker, TooManyBadFilesError, data_root
from m2pt.data.cache import generating_folder


def _loader(bad: set[int]):
    def load(index: int) -> int:
        if index in bad:
            raise OSError(f"cannot read item {index}")
        return index
    return load


def test_bad_item_is_replaced_by_the_next_valid_one_and_logged(caplog):
    tracker = BadFileTracker([f"f{i}.wav" for i in range(10)], max_bad_fraction=0.3)
    assert tracker.load(3, _loader({3, 4})) == 5
    assert tracker.num_bad == 2 and tracker.bad_paths == ["f3.wav", "f4.wav"]
    assert "f3.wav" in caplog.text
    # Known-bad items are skipped without retrying; the last item wraps around to the first.
    assert tracker.load(4, _loader(set())) == 5
    assert tracker.load(9, _loader({9})) == 0


def test_too_many_bad_files_raise_with_examples():
    tracker = BadFileTracker([f"clip{i}.mp4" for i in range(20)], max_bad_fraction=0.05)
    tracker.load(0, _loader({0}))  # 1 of 20 = 5%: tolerated
    with pytest.raises(TooManyBadFilesError, match=r"clip0.mp4.*\n.*clip1.mp4"):
        tracker.load(1, _loader({1}))


def test_all_bad_raises():
    tracker = BadFileTracker(["a", "b"], max_bad_fraction=1.0)
    with pytest.raises(TooManyBadFilesError, match="none of the items"):
        tracker.load(0, _loader({0, 1}))


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("M2PT_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("M2PT_DATA")
    assert data_root().name == "data" and ".cache" in str(data_root())


def test_generating_folder_is_atomic(tmp_path):
    final = tmp_path / "dataset"
    with pytest.raises(RuntimeError):
        with generating_folder(final) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("interrupted")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with generating_folder(final) as tmp:
        (tmp / "done.txt").write_text("x")
    assert (final / "done.txt").is_file() and len(list(tmp_path.iterdir())) == 1
