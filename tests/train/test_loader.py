"""Parallel loading gives the same run as main-process loading, also across an interrupt and resume."""

from __future__ import annotations

import json

import pytest
import torch

from m2pt.data.robust import BadFileTracker
from m2pt.io import load_tensor_file
from m2pt.train.finetuning import finetune
from m2pt.train.loader import TrainLoader, default_workers

from .conftest import TINY_MODEL, tiny_config

# Random augmentation (MAE pipeline), mixup/cutmix and drop path all draw random numbers.
AUGMENTED = dict(augment="mae", mixup=0.8, cutmix=1.0, label_smoothing=0.1, drop_path=0.1, epochs=2)


def _metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _epoch_records(folder):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in _metrics(folder) if "train_loss" in r]


def test_two_workers_and_an_interrupted_resumed_run_equal_main_process_loading(tmp_path):
    main = finetune(tiny_config(tmp_path / "main", workers=0, **AUGMENTED), quiet=True)
    two = finetune(tiny_config(tmp_path / "two", workers=2, **AUGMENTED), quiet=True)
    cut = tiny_config(tmp_path / "cut", workers=2, interrupt_at_step=4, **AUGMENTED)  # epoch 1 has 6 steps
    assert finetune(cut, quiet=True)["finished"] is False
    resumed = finetune(cut.replace(interrupt_at_step=None), resume=True, quiet=True)

    reference = load_tensor_file(tmp_path / "main" / "model.safetensors")
    for run in ("two", "cut"):
        weights = load_tensor_file(tmp_path / run / "model.safetensors")
        assert set(weights) == set(reference)
        for key in reference:
            torch.testing.assert_close(weights[key], reference[key], atol=0, rtol=0, msg=f"{run}: {key}")
    assert _epoch_records(tmp_path / "two") == _epoch_records(tmp_path / "main")
    # The resumed run's first epoch averages only the steps after the resume (issue 9's concern):
    # its evaluation, and the whole second epoch, must match.
    cut_records, main_records = _epoch_records(tmp_path / "cut"), _epoch_records(tmp_path / "main")
    assert cut_records[1:] == main_records[1:]
    assert {k: v for k, v in cut_records[0].items() if k != "train_loss"} == \
        {k: v for k, v in main_records[0].items() if k != "train_loss"}
    assert two["test_loss"] == resumed["test_loss"] == main["test_loss"]
    assert two["top1"] == resumed["top1"] == main["top1"]


def test_augmented_items_depend_on_the_epoch_and_not_on_the_worker_count(tmp_path):
    from m2pt.data import builtin_dataset

    dataset = builtin_dataset("image", "train", train_size=48, test_size=16, augment="mae")
    batches = [[0, 1, 2, 3], [4, 5, 6, 7]]
    before = torch.random.get_rng_state()
    with TrainLoader(dataset, seed=3, workers=0) as loader:
        first = [x for x, _ in loader.epoch(0, batches)]
        second = [x for x, _ in loader.epoch(1, batches)]
    assert torch.equal(torch.random.get_rng_state(), before), "main-process loading must not move the training RNG"
    with TrainLoader(dataset, seed=3, workers=2) as loader:
        parallel = [x for x, _ in loader.epoch(0, batches)]
        skipped = [x for x, _ in loader.epoch(1, batches, first=1)]
    assert all(torch.equal(a, b) for a, b in zip(first, parallel))
    assert len(skipped) == 1 and torch.equal(skipped[0], second[1])
    assert not torch.equal(first[0], second[0]), "a new epoch must draw new augmentations"


class _FlakyItems(torch.utils.data.Dataset):
    """Items 3 and 5 fail to load, through a real BadFileTracker."""

    def __init__(self) -> None:
        self.tracker = BadFileTracker([f"item{i}" for i in range(8)], max_bad_fraction=0.3, dataset_name="flaky")

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int):
        return self.tracker.load(index, self._load)

    def _load(self, index: int):
        if index in (3, 5):
            raise OSError(f"cannot decode item{index}")
        return torch.full((2,), float(index)), index


def test_files_skipped_inside_workers_are_counted_by_the_main_process():
    dataset = _FlakyItems()
    with TrainLoader(dataset, seed=0, workers=2) as loader:
        batches = list(loader.epoch(0, [[0, 1], [2, 3], [4, 5], [6, 7]]))
    assert [y.tolist() for _, y in batches] == [[0, 1], [2, 4], [4, 6], [6, 7]]
    assert sorted(dataset.tracker.errors) == [3, 5]
    assert "cannot decode item3" in dataset.tracker.errors[3]


def test_too_many_bad_files_across_workers_stop_the_run():
    dataset = _FlakyItems()
    dataset.tracker.max_bad_fraction = 0.15  # 1 bad file of 8 is tolerated, 2 are not; each worker sees 1
    from m2pt.data.errors import TooManyBadFilesError

    with TrainLoader(dataset, seed=0, workers=2) as loader:
        with pytest.raises(TooManyBadFilesError, match="2 of 8 files failed"):
            list(loader.epoch(0, [[3, 0], [5, 1]]))


def test_default_workers_leave_one_core_per_training_process():
    assert default_workers(1, cores=2) == 1
    assert default_workers(1, cores=1) == 0
    assert default_workers(4, cores=16) == 3
    assert default_workers(1, cores=64) == 8


@pytest.mark.parametrize("modality, augment, data_options, overrides", [
    ("video", "videomae", {"train_size": 12, "test_size": 6, "test_clips": 2, "test_crops": 2}, {}),
    ("audio", "audiomae", {"train_size": 12, "test_size": 6}, {}),
    ("point", "pointmae", {"train_size": 12, "test_size": 6, "points_per_shape": 128, "test_votes": 3},
     {"num_points": 128, "num_groups": 8, "group_size": 16}),
])
def test_each_base_pipeline_trains_evaluates_and_merges(tmp_path, aux_file, modality, augment, data_options,
                                                        overrides):
    config = tiny_config(tmp_path / modality, modality=modality, augment=augment, data_options=data_options,
                         model_overrides={**TINY_MODEL, **overrides}, aux=[str(aux_file)], epochs=1,
                         batch_size=4, workers=1, mixup=0.8 if modality == "video" else 0.0)
    final = finetune(config, quiet=True)
    assert final["finished"] and 0.0 <= final["top1"] <= 100.0
    assert final["merge_max_abs_diff"] < 1e-4  # the merged model scores every view like the pathway model


def test_workers_and_augment_on_the_command_line(tmp_path, capsys):
    from m2pt.cli import main

    base = ["finetune", "--output", str(tmp_path / "run"), "--epochs", "1", "--data-option", "train_size=16",
            "--data-option", "test_size=8", "--model-override", "embed_dim=32", "--model-override", "depth=1",
            "--model-override", "num_heads=2", "--batch-size", "8", "--quiet"]
    assert main(base + ["--workers", "-1"]) == 2
    assert "workers must be 0 (load in the main process) or more" in capsys.readouterr().err
    assert main(base + ["--augment", "videomae"]) == 2
    assert "not a image pipeline; choose one of ['none', 'mae']" in capsys.readouterr().err
    assert main(base + ["--workers", "0", "--augment", "mae", "--mixup", "0.8", "--mixup-prob", "0.5"]) == 0
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (written["workers"], written["augment"], written["mixup_prob"]) == (0, "mae", 0.5)
