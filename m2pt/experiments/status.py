"""Where a study stands, read from its folder alone (``m2pt reproduce --status``).

Nothing is written, locked or calibrated, so it is safe beside the study's own command: the
finished runs come from ``results.jsonl``, the runs and pretrainings in progress from their
folders (their last epoch in ``metrics.jsonl``; whether a process holds the folder's lock), the
failures from ``failures.jsonl`` and the time left from the cached step times of
``--estimate-only`` or an earlier start, scaled by what the finished runs took (without them:
from the pace of the finished runs of each kind, and of the runs and pretrainings in progress).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from m2pt.train.run_dir import CHECKPOINT
from m2pt.train.run_lock import folder_in_use

from .budgets import Profile
from .estimate import (CALIBRATION_FILE, estimate_seconds, format_duration, measured_estimates, measured_factors,
                       measured_rates)
from .plan import PretrainSpec, RunSpec, priority
from .records import RESULTS_FILE, latest_rows, read_rows
from .runner import FAILURES_FILE, FINGERPRINT_FILE, Runner, RunnerOptions


@dataclass(frozen=True)
class RunProgress:
    """A started, unfinished run, as its folder shows it."""

    run_id: str
    epochs_done: int
    epochs: int
    metric: Optional[str]
    """``top1`` or ``mAP``; None before the first evaluated epoch."""
    last_value: Optional[float]
    updated: float
    """When ``metrics.jsonl`` was last written (seconds since the epoch)."""
    running: bool
    """Whether a process holds the run folder's lock now."""
    resumable: bool
    """Whether it has a checkpoint to resume from (else it starts again)."""
    epoch_seconds: Optional[float] = None
    """The median training time of its last :data:`RECENT_EPOCHS` epochs; None before the first."""

    @property
    def fraction_done(self) -> float:
        return self.epochs_done / self.epochs if self.epochs else 0.0

    @property
    def seconds_left(self) -> Optional[float]:
        """Training time its remaining epochs take at its recent pace (evaluation not counted)."""
        return None if self.epoch_seconds is None else max(0, self.epochs - self.epochs_done) * self.epoch_seconds


#: How many of a run's last epochs set its pace (the other worker's load changes over a study).
RECENT_EPOCHS = 5


def _epoch_records(metrics_path: Path) -> list[dict[str, Any]]:
    """The end-of-epoch records of ``metrics.jsonl``, skipping a line still being written."""
    records = []
    for line in metrics_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "epoch_seconds" in record:
            records.append(record)
    return records


def run_progress(run: RunSpec, folder: Path) -> Optional[RunProgress]:
    """The progress of ``run`` in ``folder``; None when it has not started there with its current options."""
    fingerprint = folder / FINGERPRINT_FILE
    metrics = folder / "metrics.jsonl"
    if not fingerprint.is_file() or fingerprint.read_text().strip() != run.fingerprint() or not metrics.is_file():
        return None
    records = _epoch_records(metrics)
    evaluated = [r for r in records if "top1" in r or "mAP" in r]
    metric = None if not evaluated else ("top1" if "top1" in evaluated[-1] else "mAP")
    recent = sorted(float(r["epoch_seconds"]) for r in records[-RECENT_EPOCHS:])
    return RunProgress(run.run_id, epochs_done=int(records[-1]["epoch"]) if records else 0,
                       epochs=int(run.options.get("epochs", 0)), metric=metric,
                       last_value=float(evaluated[-1][metric]) if metric else None,
                       updated=metrics.stat().st_mtime, running=folder_in_use(folder),
                       resumable=(folder / CHECKPOINT).is_file(),
                       epoch_seconds=recent[len(recent) // 2] if recent else None)


def pretraining_state(runner: Runner, spec: PretrainSpec) -> str:
    """``done``, ``not started`` or the pretraining's last epoch and whether it runs (``epoch 15/20, running``)."""
    if runner.encoder_path(spec.source).is_file():
        return "done"
    folder = runner.pretrain_folder(spec.source)
    metrics = folder / "metrics.jsonl"
    if not metrics.is_file():
        return "not started"
    records = _epoch_records(metrics)
    epochs_done = int(records[-1]["epoch"]) if records else 0
    state = _folder_state(folder_in_use(folder), (folder / CHECKPOINT).is_file())
    return f"epoch {epochs_done}/{spec.options.get('epochs', '?')}, {state}"


def pretraining_pace(runner: Runner, spec: PretrainSpec) -> Optional[float]:
    """Seconds a started pretraining has left at the pace of its last epochs; None before its first epoch."""
    metrics = runner.pretrain_folder(spec.source) / "metrics.jsonl"
    records = _epoch_records(metrics) if metrics.is_file() else []
    if not records or not isinstance(spec.options.get("epochs"), int):
        return None
    recent = sorted(float(r["epoch_seconds"]) for r in records[-RECENT_EPOCHS:])
    return max(0, spec.options["epochs"] - int(records[-1]["epoch"])) * recent[len(recent) // 2]


def _folder_state(running: bool, resumable: bool) -> str:
    return "running" if running else "stopped, resumes from its checkpoint" if resumable else "stopped, starts again"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 60 else f"{format_duration(seconds - seconds % 60)} ago"


def _time_left(output: Path, pretrainings: Sequence[PretrainSpec], pending: Sequence[RunSpec],
               finished: Sequence[tuple[RunSpec, dict[str, Any]]], progress: dict[str, RunProgress],
               threads: int, workers: int, runner: Runner) -> str:
    cache = output / CALIBRATION_FILE.replace(".json", f"-{threads}thread.json")
    left_out: list[str] = []
    try:
        step_times = json.loads(cache.read_text())
        estimates = estimate_seconds(pretrainings, pending, step_times, measured_factors(finished, step_times))
        for run in pending:
            if run.run_id in progress:
                estimates[run.run_id] *= 1.0 - progress[run.run_id].fraction_done
        source = "cached step times, scaled by what the finished runs took"
    except (OSError, ValueError, KeyError):
        paced = {run.run_id: progress[run.run_id].seconds_left for run in pending
                 if run.run_id in progress and progress[run.run_id].seconds_left is not None}
        estimates, kinds = measured_estimates([run for run in pending if run.run_id not in paced],
                                              measured_rates(finished))
        estimates.update(paced)
        for spec in pretrainings:
            pace = pretraining_pace(runner, spec)
            if pace is None:
                left_out.append(f"pretraining {spec.source}")
            else:
                estimates[f"pretrain/{spec.run_id}"] = pace
        if not estimates:
            return (f"time left: unknown (no step times for every kind of run in {cache.name}, and nothing "
                    "finished or started to take the pace from; `--estimate-only` measures them)")
        left_out += [f"{kind} runs" for kind in kinds]
        source = "the pace of this study's finished runs of each kind and of the work in progress"
    seconds = sum(estimates.values()) / max(1, workers)
    missing = f"; not counted: {', '.join(left_out)}" if left_out else ""
    return (f"time left: about {format_duration(seconds)} with {workers} worker(s) of {threads} thread(s) "
            f"({source}{missing})")


def study_status(profile: Profile, pretrainings: Sequence[PretrainSpec], runs: Sequence[RunSpec], output: Path,
                 now: Optional[float] = None, paced_by: Optional[Sequence[RunSpec]] = None) -> list[str]:
    """Lines that say where the study in ``output`` stands against the plan ``runs``.

    Args:
        profile: The study's profile (for its tiers).
        pretrainings: The pretrainings the runs need.
        runs: The planned runs (with any extra seeds).
        output: The study's folder.
        now: The current time (seconds since the epoch); default the clock.
        paced_by: The runs whose finished rows give the pace of each kind of run when no step
            times are cached (default ``runs``; the whole plan when ``runs`` is a selection).

    Returns:
        Lines: the counts, the pretrainings, finished runs per tier (profiles run in tiers), the
        runs in progress (last epoch and accuracy, running or stopped), the failures and the
        time left.
    """
    now = time.time() if now is None else now
    runner = Runner(RunnerOptions(output=output, log=lambda _: None))
    rows = latest_rows(read_rows(output / RESULTS_FILE))
    finished = [run for run in runs if runner.is_finished(run, rows)]
    done_ids = {run.run_id for run in finished}
    pending = [run for run in runs if run.run_id not in done_ids]
    progress = {p.run_id: p for p in (run_progress(run, runner.run_folder(run)) for run in pending) if p}
    failures = {row["run_id"]: row for row in read_rows(output / FAILURES_FILE)
                if row.get("run_id") in {run.run_id for run in pending}}
    running = sum(p.running for p in progress.values())
    failed_before_start = sum(run_id not in progress for run_id in failures)
    lines = [f"{output}: {len(finished)} of {len(runs)} runs finished, {len(progress)} started and unfinished "
             f"({running} running now), {failed_before_start} failed before their first epoch, "
             f"{len(pending) - len(progress) - failed_before_start} not started"]
    try:
        plan = json.loads((output / "plan.json").read_text())
    except (OSError, ValueError):  # not started yet, or being written
        plan = {}
    if plan:
        only = " ".join(f"--only {pattern}" for pattern in plan.get("only", []))
        lines.append(f"last started with {plan.get('workers')} worker(s) of {plan.get('threads')} thread(s)"
                     + (f", {only}" if only else ""))
    if pretrainings:
        lines.append("pretrainings: " + "; ".join(f"{spec.source} {pretraining_state(runner, spec)}"
                                                  for spec in pretrainings))
    tiers: dict[int, list[RunSpec]] = {}
    for run in runs if profile.order == "informative" else ():
        tiers.setdefault(priority(profile, run), []).append(run)
    for tier, members in sorted(tiers.items()):
        started = sum(run.run_id in progress for run in members)
        lines.append(f"  tier {tier}: {sum(run.run_id in done_ids for run in members)} of {len(members)} finished"
                     + (f", {started} started" if started else ""))
    if progress:
        lines.append("started and unfinished:")
        width = max(len(run_id) for run_id in progress)
        for p in progress.values():
            value = f"{p.metric} {p.last_value:.2f}" if p.metric else "not evaluated yet"
            state = _folder_state(p.running, p.resumable)
            pace = ("" if p.seconds_left is None else
                    f"; about {format_duration(p.seconds_left)} of training left at {p.epoch_seconds:.0f} s/epoch")
            lines.append(f"  {p.run_id:<{width}}  epoch {p.epochs_done}/{p.epochs}, {value}; {state}; "
                         f"last written {_ago(now - p.updated)}{pace}")
    if failures:
        lines.append(f"failed (tracebacks in {FAILURES_FILE}; the command tries them again when rerun):")
        lines += [f"  {run_id}: {row.get('error', '')}" for run_id, row in failures.items()]
    if pending:
        not_done = [spec for spec in pretrainings if not runner.encoder_path(spec.source).is_file()]
        measured = [run for run in (runs if paced_by is None else paced_by) if runner.is_finished(run, rows)]
        lines.append(_time_left(output, not_done, pending, [(run, rows[run.run_id]) for run in measured],
                                progress, int(plan.get("threads") or 1), int(plan.get("workers") or 1), runner))
    return lines
