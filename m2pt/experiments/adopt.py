"""Adopt a finished run whose role in the plan changed, instead of training it again.

A run's fingerprint hashes what it computes (setting, target, auxiliary, pathway, seed and the
options that change its result), not its arm's name. When a profile changes so that a planned run
computes what a finished run of another arm already computed, the study takes that result over.
Example: the converged profile's audio target went from 48 to 96 epochs, so its new ``baseline``
is what its old plateau check (``baseline-x2``, twice 48 epochs) ran on the same seeds.

An adopted result is a new row in ``results.jsonl``: the finished row relabelled with the planned
run's id, arm, group and baseline, and ``adopted_from`` naming the run it came from. Its run folder
is copied to the planned run's folder (replacing what a stale run left there), so that the runner
finds it finished and nothing the row points to is overwritten when the old run id trains again
under its new options.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from m2pt.train.run_lock import folder_in_use

from .plan import RunSpec
from .records import RESULTS_FILE, append_row, latest_rows, read_rows

ADOPTED_FROM = "adopted_from"


def adopt_finished_runs(output: Path, runs: Sequence[RunSpec], run_folder: Callable[[RunSpec], Path],
                        log: Callable[[str], None] = print) -> list[str]:
    """Give each planned run without a current row the finished row that has its fingerprint.

    Args:
        output: The study's folder (its ``results.jsonl``).
        runs: The planned runs.
        run_folder: A run's folder in this study (:meth:`~m2pt.experiments.runner.Runner.run_folder`).
        log: Where to say what was adopted.

    Returns:
        The ids of the runs that adopted a result.
    """
    rows = latest_rows(read_rows(output / RESULTS_FILE))
    by_fingerprint: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        by_fingerprint.setdefault(row.get("fingerprint"), row)
    adopted: list[str] = []
    for run in runs:
        fingerprint = run.fingerprint()
        current = rows.get(run.run_id)
        source = by_fingerprint.get(fingerprint)
        if (current is not None and current.get("fingerprint") == fingerprint) or source is None:
            continue
        destination = run_folder(run)
        if folder_in_use(destination):
            log(f"{run.run_id}: not adopting {source['run_id']} (its folder {destination} is in use)")
            continue
        row = _relabelled(source, run, _copied_folder(source, destination))
        append_row(output / RESULTS_FILE, row)
        rows[run.run_id] = row
        adopted.append(run.run_id)
        log(f"{run.run_id}: adopted the finished run {source['run_id']} (same fingerprint {fingerprint})")
    return adopted


def _relabelled(source: dict[str, Any], run: RunSpec, folder: str) -> dict[str, Any]:
    return {**source, "run_id": run.run_id, "arm": run.arm.name, "group": run.arm.group,
            "baseline_arm": run.arm.baseline, "folder": folder,
            ADOPTED_FROM: source.get(ADOPTED_FROM) or source["run_id"]}


def _copied_folder(source: dict[str, Any], destination: Path) -> str:
    """Copy the source row's run folder to ``destination``; the folder the new row names.

    Without a source folder on this machine (rows imported from another copy of the study) the
    row keeps naming the folder it was written with.
    """
    origin = Path(str(source.get("folder", "")))
    if not source.get("folder") or not origin.is_dir() or origin.resolve() == destination.resolve():
        return str(source.get("folder", ""))
    staging = destination.with_name(destination.name + ".adopting")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(origin, staging)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return str(destination)
