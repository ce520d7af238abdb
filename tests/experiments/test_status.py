"""``m2pt reproduce --status``: where a study stands, read from its folder alone."""

from __future__ import annotations

import json
import os

import pytest

from m2pt.experiments.budgets import get_profile
from m2pt.experiments.estimate import (CALIBRATION_FILE, _run_key, estimate_seconds, format_duration,
                                       measured_factors)
from m2pt.experiments.plan import build_plan
from m2pt.experiments.runner import FINGERPRINT_FILE, Runner, RunnerOptions
from m2pt.experiments.status import pretraining_state, study_status
from m2pt.train.run_lock import RunFolderLock, folder_in_use


def _started(tmp_path, run, epochs_done, top1, mtime=None):
    folder = tmp_path / "runs" / run.run_id
    folder.mkdir(parents=True)
    (folder / FINGERPRINT_FILE).write_text(run.fingerprint())
    records = [{"step": 10 * e, "epoch": e, "train_loss": 1.0, "epoch_seconds": 5.0, "top1": top1 - epochs_done + e}
               for e in range(1, epochs_done + 1)]
    text = "".join(json.dumps(r) + "\n" for r in records) + '{"step": 99, "loss": 0.'  # a line being written
    (folder / "metrics.jsonl").write_text(text)
    if mtime is not None:
        os.utime(folder / "metrics.jsonl", (mtime, mtime))
    return folder


@pytest.fixture
def study(tmp_path):
    profile = get_profile("quick")
    pretrainings, runs = build_plan(profile, seeds=[0])
    finished = runs[:2]
    (tmp_path / "results.jsonl").write_text("".join(
        json.dumps({"run_id": r.run_id, "fingerprint": r.fingerprint(), "wall_seconds": 100.0}) + "\n"
        for r in finished))
    (tmp_path / "failures.jsonl").write_text(json.dumps({"run_id": runs[4].run_id, "error": "ValueError: bad"}) + "\n")
    (tmp_path / "plan.json").write_text(json.dumps({"workers": 2, "threads": 1, "only": ["image"]}))
    return profile, pretrainings, runs, tmp_path


def test_status_counts_finished_runs_and_shows_running_and_stopped_ones(study):
    profile, pretrainings, runs, output = study
    now = 1_800_000_000.0
    running_folder = _started(output, runs[2], epochs_done=1, top1=40.0)
    stopped_folder = _started(output, runs[3], epochs_done=2, top1=55.5, mtime=now - 2 * 3600)
    (stopped_folder / "checkpoint.pt").write_bytes(b"")
    _started(output, runs[6], epochs_done=0, top1=0.0, mtime=now - 120)  # killed before its first checkpoint
    stale = output / "runs" / runs[5].run_id  # started with other options: not counted as started
    stale.mkdir(parents=True)
    (stale / FINGERPRINT_FILE).write_text("000000000000")
    (stale / "metrics.jsonl").write_text("")

    with RunFolderLock(running_folder):
        lines = study_status(profile, pretrainings, runs, output, now=now)
    text = "\n".join(lines)
    assert lines[0] == (f"{output}: 2 of {len(runs)} runs finished, 3 started and unfinished (1 running now), "
                        f"1 failed before their first epoch, {len(runs) - 6} not started")
    assert "last started with 2 worker(s) of 1 thread(s), --only image" in text
    assert f"  {runs[2].run_id}" in text and "epoch 1/" in text and "top1 40.00; running" in text
    assert "epoch 2/" in text
    assert "top1 55.50; stopped, resumes from its checkpoint; last written 2 h 00 min ago" in text
    epochs_left = runs[3].options["epochs"] - 2
    assert f"2 h 00 min ago; about {format_duration(5.0 * epochs_left)} of training left at 5 s/epoch" in text
    assert f"  {runs[6].run_id}" in text and "epoch 0/" in text
    assert "not evaluated yet; stopped, starts again; last written 2 min 00 s ago\n" in text + "\n"  # no pace yet
    assert runs[5].run_id not in text
    assert f"  {runs[4].run_id}: ValueError: bad" in text
    assert "pretrainings: " + "; ".join(f"{p.source} not started" for p in pretrainings) in text
    assert lines[-1].startswith("time left: about ") and "the pace of this study's finished runs" in lines[-1]
    assert "tier" not in text  # the quick profile runs seed-major, not in tiers


def test_status_of_a_profile_that_runs_in_tiers(tmp_path):
    profile = get_profile("converged")
    pretrainings, runs = build_plan(profile, only=["image"])
    first = runs[0]
    (tmp_path / "results.jsonl").write_text(json.dumps({"run_id": first.run_id, "fingerprint": first.fingerprint()})
                                            + "\n")
    text = "\n".join(study_status(profile, pretrainings, runs, tmp_path))
    assert "  tier 0: 1 of " in text and "  tier 1: 0 of " in text


def test_time_left_uses_the_cached_step_times_scaled_by_the_finished_runs(study):
    profile, pretrainings, runs, output = study
    step = {"load": 0.01, "compute": 0.1}
    times = {_run_key(r): step for r in runs} | {f"pretrain/{p.options['modality']}/tiny/plain": step
                                                  for p in pretrainings}
    (output / CALIBRATION_FILE.replace(".json", "-1thread.json")).write_text(json.dumps(times))
    lines = study_status(profile, pretrainings, runs, output)
    finished = [(r, {"wall_seconds": 100.0}) for r in runs[:2]]
    expected = sum(estimate_seconds(pretrainings, runs[2:], times, measured_factors(finished, times)).values()) / 2
    assert lines[-1].startswith(f"time left: about {format_duration(expected)} with 2 worker(s) of 1 thread(s)")


def test_time_left_without_step_times_follows_the_pace_of_finished_and_started_work(tmp_path):
    profile = get_profile("quick")
    pretrainings, every = build_plan(profile, seeds=[0])
    runs = every[:3] + every[6:10]  # image tiny plain and pathway (2 finished), audio tiny plain and pathway
    rows = [{"run_id": r.run_id, "fingerprint": r.fingerprint(), "wall_seconds": wall}
            for r, wall in ((runs[0], 30.0), (runs[1], 60.0))]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "plan.json").write_text(json.dumps({"workers": 2, "threads": 1}))
    _started(tmp_path, runs[2], epochs_done=1, top1=40.0)  # 5 s/epoch
    image_mae = next(p for p in pretrainings if p.source == "mae:image")
    folder = Runner(RunnerOptions(output=tmp_path, log=lambda _: None)).pretrain_folder("mae:image")
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5, "epoch_seconds": 7.0}) + "\n")

    line = study_status(profile, pretrainings, runs, tmp_path)[-1]
    per_item_epoch = 60.0 / 3000  # the finished pathway run's pace
    pathway_left = [(runs[2].options["epochs"] - 1) * 5.0, *(per_item_epoch * 3000 for _ in runs[3:5])]
    pretraining_left = (image_mae.options["epochs"] - 1) * 7.0
    assert [r.arm.name for r in runs[3:5]] == ["aux-audio-lr100", "random-audio-lr100"]
    expected = (sum(pathway_left) + pretraining_left) / 2
    assert line == (f"time left: about {format_duration(expected)} with 2 worker(s) of 1 thread(s) (the pace of "
                    "this study's finished runs of each kind and of the work in progress; not counted: pretraining "
                    "mae:audio, "
                    "finetune/audio/tiny/plain runs, finetune/audio/tiny/pathway runs)")


def test_folder_in_use_sees_another_holder_and_leaves_a_free_folder_free(tmp_path):
    assert not folder_in_use(tmp_path / "never-started")
    with RunFolderLock(tmp_path / "run"):
        assert folder_in_use(tmp_path / "run")
    assert not folder_in_use(tmp_path / "run")
    with RunFolderLock(tmp_path / "run"):  # the check took no lock that outlives it
        pass


def test_status_on_the_command_line_reads_and_refuses_flags_that_write(tmp_path, capsys):
    from m2pt.cli import main

    assert main(["reproduce", "--quick", "--output", str(tmp_path), "--status"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}: 0 of " in out and "time left: unknown" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
    assert main(["reproduce", "--quick", "--output", str(tmp_path), "--status", "--aggregate-only"]) == 2
    assert "--status only reads the study; it does not go with --aggregate-only" in capsys.readouterr().err


def test_status_shows_a_pretraining_in_progress_and_a_finished_one(study):
    profile, pretrainings, runs, output = study
    runner = Runner(RunnerOptions(output=output, log=lambda _: None))
    first, second = pretrainings[:2]
    folder = runner.pretrain_folder(first.source)
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": 10 * e, "epoch": e, "train_loss": 0.1,
                                                              "epoch_seconds": 3.0}) + "\n" for e in (1, 2)))
    runner.encoder_path(second.source).parent.mkdir(parents=True, exist_ok=True)
    runner.encoder_path(second.source).write_bytes(b"")
    with RunFolderLock(folder):
        assert pretraining_state(runner, first) == f"epoch 2/{first.options['epochs']}, running"
        text = "\n".join(study_status(profile, pretrainings, runs, output))
    assert f"{first.source} epoch 2/{first.options['epochs']}, running; {second.source} done" in text
    assert pretraining_state(runner, first).endswith("stopped, starts again")
    (folder / "checkpoint.pt").write_bytes(b"")
    assert pretraining_state(runner, first).endswith("stopped, resumes from its checkpoint")
