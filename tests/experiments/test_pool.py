"""Parallel workers: same rows as one process, interruption saves and stops, default sizing."""

from __future__ import annotations

import pytest

from m2pt.experiments.plan import PretrainSpec
from m2pt.experiments.pool import default_workers, resolve_workers
from m2pt.experiments.records import read_rows
from m2pt.experiments.runner import Runner, RunnerOptions, RunInterrupted, execute

from .test_runner import PRETRAIN, _runs


def _runner(path) -> Runner:
    return Runner(RunnerOptions(output=path, log=lambda message: None))


def test_two_workers_give_the_rows_of_one_process(tmp_path):
    pretrain = [PretrainSpec("mae:image", dict(PRETRAIN))]
    runs = _runs(seed=0) + _runs(seed=1)
    serial, parallel = _runner(tmp_path / "serial"), _runner(tmp_path / "parallel")
    assert execute(serial, pretrain, runs, progress=False)["done"] == 7
    assert execute(parallel, pretrain, runs, progress=False, workers=2, threads=1) == {
        "done": 7, "skipped": 0, "failed": 0}
    by_id = {row["run_id"]: row for row in read_rows(serial.results_path)}
    parallel_rows = read_rows(parallel.results_path)
    assert sorted(r["run_id"] for r in parallel_rows) == sorted(by_id)
    for row in parallel_rows:
        expected = by_id[row["run_id"]]
        assert row["fingerprint"] == expected["fingerprint"]
        assert row["metrics"]["top1"] == expected["metrics"]["top1"]
        assert row["metrics"]["test_loss"] == pytest.approx(expected["metrics"]["test_loss"], abs=1e-6)
        assert row["pathway_stats"].get("abs_lambda_mean") == pytest.approx(
            expected["pathway_stats"].get("abs_lambda_mean"), abs=1e-9)
    assert execute(parallel, pretrain, runs, progress=False, workers=2, threads=1)["skipped"] == 6


def test_an_interrupted_worker_saves_and_stops_the_others(tmp_path):
    runner = _runner(tmp_path / "out")
    stopped = _runs(seed=0, interrupt_at_step=3)[0]
    later = _runs(seed=1)[0]
    with pytest.raises(RunInterrupted, match="interrupt_at_step"):
        execute(runner, [], [stopped, later, *_runs(seed=2)[:1]], progress=False, workers=2, threads=1)
    assert (runner.run_folder(stopped) / "checkpoint.pt").is_file()
    assert all(row["run_id"] != stopped.run_id for row in read_rows(runner.results_path))


def test_a_failing_run_in_a_worker_is_recorded(tmp_path):
    runner = _runner(tmp_path / "out")
    broken = _runs(seed=0, batch_size=0)[0]
    counts = execute(runner, [], [broken, _runs(seed=1)[0]], progress=False, workers=2, threads=1)
    assert counts == {"done": 1, "skipped": 0, "failed": 1}
    failures = (runner.output / "failures.jsonl").read_text()
    assert broken.run_id in failures and "batch_size must be at least 1" in failures


@pytest.mark.parametrize("cores, expected", [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (16, (8, 2)), (64, (8, 8))])
def test_default_workers(cores, expected):
    assert default_workers(cores) == expected


SCRIPT = """
import sys
from pathlib import Path
from m2pt.experiments.runner import Runner, RunnerOptions, RunInterrupted, execute
from tests.experiments.test_runner import _runs
runs = [r for seed in range(4) for r in _runs(seed=seed, epochs=200)[:1]]
runner = Runner(RunnerOptions(output=Path(sys.argv[1]), log=print))
try:
    execute(runner, [], runs, progress=False, workers=2, threads=1)
except RunInterrupted as exc:
    print("INTERRUPTED", exc, flush=True)
    sys.exit(130)
"""


def test_sigterm_to_the_parent_stops_every_worker_after_saving(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    output = tmp_path / "out"
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(output)], cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    logs = [output / "runs" / "scratch" / "image" / "baseline" / f"seed{s}" / "train.log" for s in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(log.is_file() and "epoch 1/" in log.read_text() for log in logs):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # the parent only, as a scheduler's kill would
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "INTERRUPTED SIGTERM" in stdout
    for log in logs:
        assert (log.parent / "checkpoint.pt").is_file()
        assert "stopped by SIGTERM" in log.read_text()
    for seed in (2, 3):  # queued runs never start
        assert not (output / "runs" / "scratch" / "image" / "baseline" / f"seed{seed}").exists()


@pytest.mark.parametrize("workers, threads, cores, expected", [
    (0, 0, 2, (2, 1)), (0, 3, 2, (2, 3)), (2, 0, 8, (2, 4)), (4, 0, 2, (4, 1)), (1, 0, 2, (1, 0)), (1, 2, 2, (1, 2))])
def test_resolve_workers(workers, threads, cores, expected):
    assert resolve_workers(workers, threads, cores) == expected


def test_a_run_that_needs_no_unfinished_pretraining_starts_beside_it(tmp_path):
    from m2pt.experiments.runner import FINGERPRINT_FILE
    from m2pt.train.run_dir import FINAL

    runner = _runner(tmp_path / "out")
    pretrain = [PretrainSpec("mae:image", {**PRETRAIN, "epochs": 3})]
    baseline, aux, control = _runs(seed=0)
    assert execute(runner, pretrain, [aux, baseline, control], progress=False, workers=2, threads=1) == {
        "done": 4, "skipped": 0, "failed": 0}
    pretrained_at = (runner.pretrain_folder("mae:image") / FINAL).stat().st_mtime
    started_at = {run.arm.name: (runner.run_folder(run) / FINGERPRINT_FILE).stat().st_mtime
                  for run in (baseline, aux, control)}
    assert started_at["baseline"] < pretrained_at  # the free worker did not wait for the pretraining
    assert started_at["aux-image"] >= pretrained_at and started_at["random-image"] >= pretrained_at


def _job(key, *needs):
    from m2pt.experiments.runner import Job

    return Job(key, PretrainSpec(key, {}), tuple(needs))


def test_schedule_starts_the_first_ready_job_and_fails_those_whose_need_failed():
    from m2pt.experiments.pool import _Schedule
    from m2pt.experiments.runner import Outcome

    prepared = []
    jobs = [_job("pretrain/a"), _job("run1", "pretrain/a"), _job("run2"), _job("run3", "pretrain/a", "elsewhere")]
    schedule = _Schedule(jobs, prepared.append)
    first, blocked = schedule.take(set())
    assert first.key == "pretrain/a" and not blocked
    second, blocked = schedule.take({"pretrain/a"})
    assert second.key == "run2" and not blocked  # run1 waits for its pretraining
    assert schedule.take({"pretrain/a", "run2"}) == (None, [])
    schedule.settle(Outcome(first, "failed", error="boom"))
    nothing, blocked = schedule.take({"run2"})
    assert nothing is None and [o.job.key for o in blocked] == ["run1", "run3"]
    assert all(o.status == "failed" and "pretrain/a did not finish (failed)" in o.error for o in blocked)
    assert [job.key for job in prepared] == ["pretrain/a", "run2"]


def test_schedule_fails_a_job_whose_preparation_raises_and_goes_on():
    from m2pt.experiments.pool import _Schedule

    def prepare(job):
        if job.key == "bad":
            raise FileNotFoundError("mae:point: encoder.safetensors is missing")

    schedule = _Schedule([_job("bad"), _job("good")], prepare)
    job, blocked = schedule.take(set())
    assert job.key == "good"
    assert [(o.job.key, o.status) for o in blocked] == [("bad", "failed")]
    assert "FileNotFoundError: mae:point" in blocked[0].error
