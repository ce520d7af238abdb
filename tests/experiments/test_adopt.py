"""A planned run adopts the finished run that computed the same thing under another arm."""

from __future__ import annotations

import json
from pathlib import Path

from m2pt.experiments.adopt import ADOPTED_FROM, adopt_finished_runs
from m2pt.experiments.arms import BASELINE, plateau_arm
from m2pt.experiments.plan import RunSpec
from m2pt.experiments.records import RESULTS_FILE, append_row, latest_rows, read_rows
from m2pt.train.run_lock import RunFolderLock

OPTIONS = {"epochs": 4, "lr": 1e-3, "batch_size": 8}
#: The old plateau check (twice 2 epochs) and the new baseline (4 epochs): the same computation.
OLD_PLATEAU = RunSpec("scratch", "audio", plateau_arm({"epochs": 4}), 0, dict(OPTIONS))
NEW_BASELINE = RunSpec("scratch", "audio", BASELINE, 0, dict(OPTIONS))


def _finished(output: Path, run: RunSpec, top1: float) -> Path:
    folder = output / "runs" / run.run_id
    folder.mkdir(parents=True)
    (folder / "final_metrics.json").write_text(json.dumps({"top1": top1}))
    append_row(output / RESULTS_FILE, {"run_id": run.run_id, "fingerprint": run.fingerprint(), "arm": run.arm.name,
                                       "group": run.arm.group, "baseline_arm": run.arm.baseline, "seed": run.seed,
                                       "metrics": {"top1": top1}, "folder": str(folder)})
    return folder


def _folder(output: Path):
    return lambda run: output / "runs" / run.run_id


def test_the_same_fingerprint_under_another_arm_is_adopted_with_its_folder(tmp_path):
    assert OLD_PLATEAU.fingerprint() == NEW_BASELINE.fingerprint() and OLD_PLATEAU.run_id != NEW_BASELINE.run_id
    _finished(tmp_path, OLD_PLATEAU, 86.17)
    stale = tmp_path / "runs" / NEW_BASELINE.run_id
    stale.mkdir(parents=True)
    (stale / "final_metrics.json").write_text(json.dumps({"top1": 85.33}))  # the 2-epoch run of before
    messages: list[str] = []

    assert adopt_finished_runs(tmp_path, [NEW_BASELINE], _folder(tmp_path), messages.append) == [NEW_BASELINE.run_id]

    row = latest_rows(read_rows(tmp_path / RESULTS_FILE))[NEW_BASELINE.run_id]
    assert (row["arm"], row["group"], row["baseline_arm"]) == ("baseline", "main", None)
    assert row[ADOPTED_FROM] == OLD_PLATEAU.run_id and row["metrics"]["top1"] == 86.17
    assert row["fingerprint"] == NEW_BASELINE.fingerprint() and row["folder"] == str(stale)
    assert json.loads((stale / "final_metrics.json").read_text())["top1"] == 86.17
    assert not stale.with_name(stale.name + ".adopting").exists()
    assert "adopted the finished run scratch/audio/baseline-x2/seed0" in messages[0]
    # adopted once: a second call finds the run current
    assert adopt_finished_runs(tmp_path, [NEW_BASELINE], _folder(tmp_path), messages.append) == []
    assert len(read_rows(tmp_path / RESULTS_FILE)) == 2


def test_other_computations_and_current_rows_are_left_alone(tmp_path):
    _finished(tmp_path, OLD_PLATEAU, 86.17)
    other_seed = RunSpec("scratch", "audio", BASELINE, 1, dict(OPTIONS))
    longer = RunSpec("scratch", "audio", BASELINE, 0, {**OPTIONS, "epochs": 8})
    assert adopt_finished_runs(tmp_path, [other_seed, longer, OLD_PLATEAU], _folder(tmp_path), print) == []
    assert len(read_rows(tmp_path / RESULTS_FILE)) == 1


def test_a_folder_in_use_is_not_replaced(tmp_path):
    _finished(tmp_path, OLD_PLATEAU, 86.17)
    busy = tmp_path / "runs" / NEW_BASELINE.run_id
    messages: list[str] = []
    lock = RunFolderLock(busy)
    try:
        assert adopt_finished_runs(tmp_path, [NEW_BASELINE], _folder(tmp_path), messages.append) == []
    finally:
        lock.release()
    assert "is in use" in messages[0] and NEW_BASELINE.run_id not in latest_rows(read_rows(tmp_path / RESULTS_FILE))


def test_rows_without_a_folder_here_are_adopted_as_they_are(tmp_path):
    folder = _finished(tmp_path, OLD_PLATEAU, 86.17)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()  # as for rows imported from another machine
    assert adopt_finished_runs(tmp_path, [NEW_BASELINE], _folder(tmp_path), print) == [NEW_BASELINE.run_id]
    row = latest_rows(read_rows(tmp_path / RESULTS_FILE))[NEW_BASELINE.run_id]
    assert row["folder"] == str(folder) and not (tmp_path / "runs" / NEW_BASELINE.run_id).exists()
