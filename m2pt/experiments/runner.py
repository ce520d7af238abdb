"""Run a plan: MAE pretrainings, random controls, then every fine-tuning run, resumably.

Layout of the output folder::

    plan.json                the plan as run (ids, arms, options)
    calibration-<N>thread.json   measured step times with N threads (for the time estimate)
    pretrain/<source>/       MAE pretraining run folders (encoder.safetensors)
    artifacts/random/        std-matched random auxiliaries (one per source and seed)
    artifacts/permuted/      permuted auxiliaries (one per source and seed)
    runs/<setting>/<target>/<arm>/seed<N>/   fine-tuning run folders (metrics.jsonl, plots)
    results.jsonl            one row per finished run (appended as runs finish)
    pretrain_curves.json     loss curves of the pretrainings (rewritten as each one finishes)
    failures.jsonl           runs that raised (the runner goes on with the next run)
    summary.md, summary.csv, figures/*.png   aggregates (rewritten at the end)

A finished run (its row in ``results.jsonl`` with the same fingerprint) is skipped; a run
stopped in the middle resumes from its last epoch checkpoint; a run whose options changed is
started again. A pretraining whose options changed is redone only while no finished run used
its encoder (else :class:`PretrainingChanged`), and controls made from an older encoder are
made again.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .plan import PretrainSpec, RunSpec, pretraining_sources, result_options
from .random_aux import CONTROL_KINDS, write_control_auxiliary
from .records import RESULTS_FILE, append_row, latest_rows, make_row, read_rows

FINGERPRINT_FILE = "m2pt_fingerprint.txt"
FAILURES_FILE = "failures.jsonl"
HEAVY_FILES = ("checkpoint.pt", "model.safetensors", "pathways.safetensors")

#: The pool already gives every core a run; the built-in data loads in microseconds per item,
#: so loader processes would only compete with the runs for the cores.
LOADING = {"workers": 0}


#: Added to a run's seed to seed its control's draw (random: the value used since the first results).
CONTROL_SEED_OFFSET = {"random": 1000, "permuted": 2000}


class RunInterrupted(RuntimeError):
    """A signal stopped a run; rerun the same command to resume."""


class PretrainingChanged(ValueError):
    """A pretraining would be redone with other options after finished runs used its encoder."""


@dataclass
class RunnerOptions:
    """How the runner behaves.

    Attributes:
        output: Results folder.
        keep_heavy_files: Keep checkpoints and model files of finished runs (default: deleted
            once the row is written; metrics, config and plots stay).
        quiet: No per-epoch progress bars inside runs.
        log: Where messages go.
    """

    output: Path
    keep_heavy_files: bool = False
    quiet: bool = True
    log: Callable[[str], None] = print


def _write_fingerprint(folder: Path, fingerprint: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FINGERPRINT_FILE).write_text(fingerprint)


def _same_fingerprint(folder: Path, fingerprint: str) -> bool:
    path = folder / FINGERPRINT_FILE
    return path.is_file() and path.read_text().strip() == fingerprint


def _epoch_seconds(folder: Path) -> float:
    """Seconds the finished epochs in ``folder/metrics.jsonl`` took (a resumed run's earlier parts)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return 0.0
    total = 0.0
    for line in path.read_text().splitlines():
        try:
            total += float(json.loads(line).get("epoch_seconds", 0.0))
        except (ValueError, AttributeError, TypeError):
            continue  # a line cut short when the run was killed
    return total


def _uses_source(row: dict[str, Any], source: str) -> bool:
    """Whether a results row's run used the encoder of ``source`` (directly or through a control)."""
    aux = row.get("aux") or ""
    kind, _, inner = aux.partition(":")
    return (inner if kind in CONTROL_KINDS else aux) == source or row.get("init") == source


def _changed_options(folder: Path, options: dict[str, Any]) -> str:
    """``"epochs 20 -> 40, ..."``: the options of ``folder``'s run that ``options`` change."""
    try:
        stored = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "its config.json is unreadable"
    changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in sorted(result_options(options).items())
               if stored.get(key) != value]
    return ", ".join(changed) or "options changed"


def _options_fingerprint(options: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha1(json.dumps(result_options(options), sort_keys=True).encode()).hexdigest()[:12]


class Runner:
    """Executes pretrainings and runs into ``options.output``; see the module docstring."""

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self.output = Path(options.output)
        self.results_path = self.output / RESULTS_FILE

    # ---- artifacts -------------------------------------------------------------------------
    def pretrain_folder(self, source: str) -> Path:
        return self.output / "pretrain" / source.replace(":", "-")

    def encoder_path(self, source: str) -> Path:
        from m2pt.train.mae import ENCODER_FILE

        return self.pretrain_folder(source) / ENCODER_FILE

    def resolve(self, source: str, seed: int) -> str:
        """File of an auxiliary/init source (random controls are written on first use)."""
        if source == "minilm":
            from m2pt.checkpoints import builtin_checkpoint_path

            return str(builtin_checkpoint_path("minilm"))
        kind, _, inner = source.partition(":")
        if kind in CONTROL_KINDS:
            path = self.output / "artifacts" / kind / f"{inner.replace(':', '-')}-seed{seed}.safetensors"
            pretrained = self.resolve(inner, seed)
            # made again when missing or older than its encoder (a pretraining redone with other options)
            if not path.is_file() or path.stat().st_mtime < Path(pretrained).stat().st_mtime:
                write_control_auxiliary(pretrained, path, seed=CONTROL_SEED_OFFSET[kind] + seed, kind=kind)
            return str(path)
        path = self.encoder_path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{source}: {path} is missing; its pretraining has not finished")
        return str(path)

    def pretrained_file(self, source: str, seed: int) -> str:
        """The pretrained file an auxiliary comes from (a control's: the encoder it was drawn from)."""
        kind, _, inner = source.partition(":")
        return self.pretrained_file(inner, seed) if kind in CONTROL_KINDS else self.resolve(source, seed)

    # ---- pretraining -----------------------------------------------------------------------
    def pretrain_finished(self, spec: PretrainSpec) -> bool:
        """Whether this pretraining, with these options, has written its encoder."""
        from m2pt.train.run_dir import FINAL

        folder = self.pretrain_folder(spec.source)
        return (_same_fingerprint(folder, _options_fingerprint(spec.options)) and (folder / FINAL).is_file()
                and self.encoder_path(spec.source).is_file())

    def check_pretrainings(self, pretrainings: Sequence[PretrainSpec]) -> None:
        """Refuse to redo a pretraining with other options while finished runs used its encoder.

        Raises:
            PretrainingChanged: Naming the pretraining, the changed options and a run that used it.
        """
        rows = self.finished_rows()
        for spec in pretrainings:
            folder = self.pretrain_folder(spec.source)
            if not self.encoder_path(spec.source).is_file() or \
                    _same_fingerprint(folder, _options_fingerprint(spec.options)):
                continue
            users = sorted(run_id for run_id, row in rows.items() if _uses_source(row, spec.source))
            if users:
                raise PretrainingChanged(
                    f"pretraining {spec.source} in {folder} was made with other options than the plan's "
                    f"({_changed_options(folder, spec.options)}), and {len(users)} finished run(s) used its "
                    f"encoder (first: {users[0]}): redoing it would mix two auxiliaries in one study. Run the "
                    "changed plan with a new --output, or keep this pretraining's options")

    def pretrain(self, spec: PretrainSpec) -> bool:
        """Run one MAE pretraining unless finished; returns whether work was done."""
        from m2pt.train.config import TrainConfig
        from m2pt.train.mae import pretrain
        from m2pt.train.run_dir import CHECKPOINT

        if self.pretrain_finished(spec):
            return False
        folder = self.pretrain_folder(spec.source)
        fingerprint = _options_fingerprint(spec.options)
        resume = _same_fingerprint(folder, fingerprint) and (folder / CHECKPOINT).is_file()
        _write_fingerprint(folder, fingerprint)
        config = TrainConfig(**{**LOADING, **spec.options, "output": str(folder)})
        result = pretrain(config, resume=resume, overwrite=not resume, quiet=self.options.quiet,
                          handle_signals=True)
        if not result.get("finished", False):
            raise RunInterrupted(f"pretraining {spec.source} stopped ({result.get('stop_reason')})")
        (folder / CHECKPOINT).unlink(missing_ok=True)
        return True

    # ---- fine-tuning -----------------------------------------------------------------------
    def finished_rows(self) -> dict[str, dict[str, Any]]:
        return latest_rows(read_rows(self.results_path))

    def is_finished(self, run: RunSpec, rows: Optional[dict[str, dict[str, Any]]] = None) -> bool:
        rows = self.finished_rows() if rows is None else rows
        row = rows.get(run.run_id)
        return row is not None and row.get("fingerprint") == run.fingerprint()

    def run_folder(self, run: RunSpec) -> Path:
        return self.output / "runs" / run.run_id

    def prepare(self, run: RunSpec) -> None:
        """Write the files a run needs that do not exist yet (its random auxiliary).

        Raises:
            FileNotFoundError: A pretraining the run needs has not finished.
        """
        for source in (run.arm.aux, run.init_source):
            if source:
                self.resolve(source, run.seed)

    def finetune(self, run: RunSpec) -> dict[str, Any]:
        """Run one fine-tuning (resuming a stopped one); returns its row.

        The row is not written here: :func:`execute` appends it to ``results.jsonl``, in the one
        process that writes that file.
        """
        from m2pt.train.config import TrainConfig
        from m2pt.train.finetuning import finetune
        from m2pt.train.run_dir import CHECKPOINT, FINAL

        folder = self.run_folder(run)
        fingerprint = run.fingerprint()
        same = _same_fingerprint(folder, fingerprint)
        aux_path = self.resolve(run.arm.aux, run.seed) if run.arm.aux else None
        init_path = self.resolve(run.init_source, run.seed) if run.init_source else None
        config = TrainConfig(**{**LOADING, **run.options, "output": str(folder), "seed": run.seed, "init": init_path,
                                "aux": [aux_path] if aux_path else [], "pathway": dict(run.arm.pathway)})
        started = time.perf_counter()
        if same and (folder / FINAL).is_file():
            final = json.loads((folder / FINAL).read_text())
            wall = float("nan")
        else:
            resume = same and (folder / CHECKPOINT).is_file()
            earlier = _epoch_seconds(folder) if resume else 0.0
            _write_fingerprint(folder, fingerprint)
            final = finetune(config, resume=resume, overwrite=not resume, quiet=self.options.quiet,
                             handle_signals=True)
            if not final.get("finished", False):
                raise RunInterrupted(f"run {run.run_id} stopped ({final.get('stop_reason')})")
            wall = time.perf_counter() - started + earlier
        pretrained = self.pretrained_file(run.arm.aux, run.seed) if run.arm.aux else None
        row = make_row(run, folder, final, wall, aux_path, pretrained)
        if not self.options.keep_heavy_files:
            for name in HEAVY_FILES:
                (folder / name).unlink(missing_ok=True)
        return row

    def record_failure(self, run_id: str, error: str, trace: str) -> None:
        """Append a failed run to ``failures.jsonl`` and log it."""
        append_row(self.output / FAILURES_FILE, {
            "run_id": run_id, "error": error, "traceback": trace, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.options.log(f"{run_id} failed: {error}")


def remove_run_folder(folder: Path) -> None:
    """Delete a run folder (used by ``--rerun``)."""
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Job:
    """One unit of work of :func:`execute`: a pretraining or a fine-tuning run."""

    key: str
    """Its key in the time estimates (``pretrain/<id>`` or the run id)."""
    spec: PretrainSpec | RunSpec
    needs: tuple[str, ...] = ()
    """Keys of the jobs (pretrainings) that must be done before this one starts."""

    @property
    def name(self) -> str:
        return self.spec.source if isinstance(self.spec, PretrainSpec) else self.spec.run_id


@dataclass
class Outcome:
    """What a job ended with: ``status`` is ``done``, ``skipped``, ``failed``, ``interrupted`` or
    ``cancelled`` (a worker was told to stop before the job started)."""

    job: Job
    status: str
    row: Optional[dict[str, Any]] = None
    error: str = ""
    trace: str = ""


def run_job(runner: Runner, job: Job) -> Outcome:
    """Run one job, turning any exception but :class:`RunInterrupted` into a failed outcome."""
    try:
        if isinstance(job.spec, PretrainSpec):
            return Outcome(job, "done" if runner.pretrain(job.spec) else "skipped")
        return Outcome(job, "done", row=runner.finetune(job.spec))
    except RunInterrupted as exc:
        return Outcome(job, "interrupted", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded, the plan goes on
        return Outcome(job, "failed", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())


def execute(runner: Runner, pretrainings: Sequence[PretrainSpec], runs: Sequence[RunSpec],
            estimates: Optional[dict[str, float]] = None, progress: bool = True, workers: int = 1,
            threads: int = 1) -> dict[str, int]:
    """Run everything not finished yet, with a progress bar over runs.

    Pretrainings come first, then fine-tuning runs in plan order; a run starts once the
    pretrainings it uses are done, so runs that need none of the unfinished ones go ahead
    beside them. With ``workers > 1`` jobs run in that many worker processes of ``threads``
    torch threads each (see :mod:`m2pt.experiments.pool`); the parent alone writes ``results.jsonl``.
    A run that raises is recorded in ``failures.jsonl`` and the next one starts (runs that need
    a failed pretraining fail too); a signal (SIGINT/SIGTERM) stops every run in progress after
    saving its checkpoint, then raises :class:`RunInterrupted`.

    Returns:
        Counts: ``done``, ``skipped``, ``failed``.

    Raises:
        PretrainingChanged: Before any work, when a pretraining's options changed after finished
            runs used its encoder.
    """
    from tqdm.auto import tqdm

    from .convergence import record_pretrain_curves
    from .pool import run_jobs

    runner.check_pretrainings(pretrainings)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    estimates = estimates or {}
    rows = runner.finished_rows()
    pending = [r for r in runs if not runner.is_finished(r, rows)]
    counts["skipped"] = len(runs) - len(pending)
    pretrain_jobs = [Job(f"pretrain/{p.run_id}", p) for p in pretrainings if not runner.pretrain_finished(p)]
    pretraining_keys = {job.spec.source: job.key for job in pretrain_jobs}
    run_jobs_ = [Job(r.run_id, r, tuple(pretraining_keys[source] for source in pretraining_sources(r)
                                        if source in pretraining_keys)) for r in pending]
    remaining = sum(estimates.get(job.key, 0.0) for job in pretrain_jobs + run_jobs_) / max(1, workers)
    bar = tqdm(total=len(pretrain_jobs) + len(run_jobs_), desc="reproduce", unit="run", disable=not progress,
               dynamic_ncols=True)

    def finished(outcome: Outcome) -> None:
        nonlocal remaining
        if outcome.status == "failed":
            counts["failed"] += 1
            runner.record_failure(outcome.job.key, outcome.error, outcome.trace)
        elif outcome.status == "done":
            counts["done"] += 1
            if outcome.row is not None:
                append_row(runner.results_path, outcome.row)
            if isinstance(outcome.job.spec, PretrainSpec):
                record_pretrain_curves(runner.output)
        remaining -= estimates.get(outcome.job.key, 0.0) / max(1, workers)
        bar.set_description(outcome.job.name)
        if estimates:  # without a calibration (--no-estimate) there is nothing to count down
            bar.set_postfix_str(f"est. left {max(0.0, remaining) / 60:.0f} min", refresh=False)
        bar.update(1)

    def prepare(job: Job) -> None:
        if isinstance(job.spec, RunSpec):
            runner.prepare(job.spec)

    try:
        run_jobs(runner, pretrain_jobs + run_jobs_, finished, workers, threads, prepare)
    finally:
        bar.close()
    return counts
