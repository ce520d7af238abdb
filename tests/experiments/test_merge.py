"""Importing the finished runs of another copy of a study: rows, pretraining curves, the committed study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2pt.cli import main
from m2pt.experiments.budgets import get_profile
from m2pt.experiments.merge import MissingResults, import_results
from m2pt.experiments.plan import build_plan
from m2pt.experiments.records import append_row, latest_rows, read_rows
from m2pt.experiments.reproduce import reproduce
from m2pt.experiments.runner import Runner, RunnerOptions

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "converged"


def _row(run_id: str, top1: float, fingerprint: str = "f1") -> dict:
    return {"run_id": run_id, "fingerprint": fingerprint, "metrics": {"top1": top1}}


def _curves(folder: Path, **curves) -> None:
    (folder / "pretrain_curves.json").write_text(json.dumps(
        {name: {"fingerprint": None, "curve": [[1, loss]]} for name, loss in curves.items()}))


def test_rows_and_curves_this_folder_lacks_are_appended_and_its_own_results_stand(tmp_path):
    elsewhere, here = tmp_path / "elsewhere", tmp_path / "here"
    for run_id, top1 in (("a/seed0", 80.0), ("b/seed0", 70.0), ("b/seed0", 71.0)):  # b ran twice there
        append_row(elsewhere / "results.jsonl", _row(run_id, top1))
    append_row(here / "results.jsonl", _row("a/seed0", 90.0, fingerprint="f2"))
    _curves(elsewhere, **{"mae-point": 0.5, "mae-image": 0.4})
    _curves(here, **{"mae-point": 0.3})

    report = import_results(elsewhere, here)
    assert (report.rows_added, report.rows_present, report.curves_added) == (1, 1, 1)
    rows = latest_rows(read_rows(here / "results.jsonl"))
    assert rows["a/seed0"]["metrics"]["top1"] == 90.0 and rows["b/seed0"]["metrics"]["top1"] == 71.0
    curves = json.loads((here / "pretrain_curves.json").read_text())
    assert curves["mae-point"]["curve"] == [[1, 0.3]] and curves["mae-image"]["curve"] == [[1, 0.4]]

    again = import_results(elsewhere / "results.jsonl", here)  # the file itself works too; nothing new
    assert (again.rows_added, again.rows_present, again.curves_added) == (0, 2, 0)
    assert len(read_rows(here / "results.jsonl")) == 2
    assert import_results(here, here).rows_added == 0

    with pytest.raises(MissingResults, match="nowhere/results.jsonl does not exist.*results/converged"):
        import_results(tmp_path / "nowhere", here)


def test_the_command_refuses_a_folder_without_results_in_one_line(tmp_path, capsys):
    code = main(["reproduce", "--profile", "converged", "--output", str(tmp_path / "out"), "--aggregate-only",
                 "--import-results", str(tmp_path / "nowhere")])
    assert code == 2 and "--import-results takes a study folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_committed_study_goes_on_from_its_finished_runs_on_a_new_machine(tmp_path):
    committed = latest_rows(read_rows(COMMITTED / "results.jsonl"))
    assert committed, "results/converged/results.jsonl has no rows"
    output = tmp_path / "converged"
    reproduce("converged", output=output, import_from=[COMMITTED], aggregate_only=True, log=lambda m: None)
    assert len(latest_rows(read_rows(output / "results.jsonl"))) == len(committed)
    assert "| scratch | image |" in (output / "summary.md").read_text()
    _, runs = build_plan(get_profile("converged"))
    runner = Runner(RunnerOptions(output=output, log=lambda m: None))
    finished = [run.run_id for run in runs if runner.is_finished(run)]
    assert finished and set(finished) <= set(committed)  # the runner skips them: same fingerprints
