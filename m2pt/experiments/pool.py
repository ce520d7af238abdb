"""Run the jobs of a plan one after another, or in parallel worker processes.

Runs are independent and small, so on a CPU several single-threaded runs at once use the cores
better than one run with several threads (on 2 cores, ``benchmarks/bench_workers.py``: 2 workers of
1 thread finish 1.11x more runs per hour than 1 process of 2 threads, start-up included, with
the same result for a given thread count).

Workers are spawned (not forked: the parent has already run torch's thread pools). Stopping is
cooperative, as in a single run: a worker ignores SIGINT/SIGTERM between runs and, inside a run,
finishes the current step and saves its checkpoint. Ctrl-C in a terminal reaches the workers
directly; a SIGTERM sent to the parent alone (``kill``, a scheduler) is passed on through an
event that each worker watches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Optional, Sequence

from .runner import Job, Outcome, RunInterrupted, Runner, RunnerOptions, run_job

_stop_event: Optional[Any] = None


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(cores: Optional[int] = None) -> tuple[int, int]:
    """``(workers, threads per worker)`` for ``cores`` cores: one single-threaded worker per core
    on up to 2 cores, then two threads per worker, at most 8 workers."""
    cores = available_cores() if cores is None else cores
    workers = cores if cores <= 2 else min(8, cores // 2)
    return workers, max(1, cores // workers)


def resolve_workers(workers: int, threads: int, cores: Optional[int] = None) -> tuple[int, int]:
    """``(workers, threads)`` from the command's values, 0 meaning auto.

    Auto workers follow :func:`default_workers` (and give their threads unless ``threads`` is
    set); several explicit workers share the cores. The threads stay 0 (to be timed) only for
    one explicit worker.
    """
    cores = available_cores() if cores is None else cores
    if workers <= 0:
        workers, auto_threads = default_workers(cores)
        return workers, threads if threads > 0 else auto_threads
    if workers > 1 and threads <= 0:
        return workers, max(1, cores // workers)
    return workers, threads


def _watch_stop(event: Any) -> None:
    event.wait()
    while True:  # repeated, so that a run starting right now still sees it
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)


def _init_worker(threads: int, event: Any) -> None:
    """Process-wide settings of a worker: torch threads, signals left to the run in progress."""
    import torch

    global _stop_event
    _stop_event = event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(threads)
    threading.Thread(target=_watch_stop, args=(event,), daemon=True, name="m2pt-stop-watch").start()


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """``OMP_WAIT_POLICY=PASSIVE`` (unless set) in the environment the workers are spawned with.

    OpenMP reads it once, when torch loads, which in a spawned worker happens before its
    initialiser runs; so it is given to the workers at spawn time and this process gets its own
    environment back afterwards.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def _run_in_worker(options: RunnerOptions, job: Job) -> Outcome:
    if _stop_event is not None and _stop_event.is_set():
        return Outcome(job, "cancelled")
    return run_job(Runner(options), job)


class _Schedule:
    """Which job starts next: the first waiting one, in the given order, whose needs are done.

    A job whose need failed (or was never run) is not started: it comes back as a failed outcome.
    """

    def __init__(self, jobs: Sequence[Job], prepare: Optional[Callable[[Job], None]]) -> None:
        self.waiting = list(jobs)
        self.prepare = prepare
        self.keys = {job.key for job in jobs}
        self.settled: dict[str, str] = {}

    def settle(self, outcome: Outcome) -> None:
        self.settled[outcome.job.key] = outcome.status

    def take(self, unfinished: set[str]) -> tuple[Optional[Job], list[Outcome]]:
        """The next job to start (None: none is ready) and the jobs that can no longer start.

        Args:
            unfinished: Keys of the jobs in progress.
        """
        blocked: list[Outcome] = []
        for job in list(self.waiting):
            needs = [key for key in job.needs if key in self.keys]
            failed = [key for key in needs if self.settled.get(key) not in (None, "done", "skipped")]
            if failed:
                self.waiting.remove(job)
                blocked.append(Outcome(job, "failed", error=f"{failed[0]} did not finish "
                                                            f"({self.settled[failed[0]]}), and this job needs it"))
                continue
            if any(key not in self.settled for key in needs):
                continue
            self.waiting.remove(job)
            try:
                if self.prepare is not None:
                    self.prepare(job)
            except Exception as exc:  # noqa: BLE001 - e.g. a control drawn from a missing encoder
                blocked.append(Outcome(job, "failed", error=f"{type(exc).__name__}: {exc}",
                                       trace=traceback.format_exc()))
                continue
            return job, blocked
        if not unfinished and self.waiting:  # a cycle or a need that can never settle
            blocked += [Outcome(job, "failed", error=f"its needs {list(job.needs)} cannot finish")
                        for job in self.waiting]
            self.waiting.clear()
        return None, blocked


def run_jobs(runner: Runner, jobs: Sequence[Job], finished: Callable[[Outcome], None], workers: int = 1,
             threads: int = 1, prepare: Optional[Callable[[Job], None]] = None) -> None:
    """Run ``jobs``, calling ``finished`` with each outcome as it comes (in this process).

    A job starts as soon as a worker is free and the jobs it needs (``Job.needs``) are done, in
    the order given otherwise: a run does not wait for a pretraining it does not use.
    ``prepare`` is called here, in the parent, just before a job starts (a failure there fails
    the job), so that files jobs share are written once.

    Raises:
        RunInterrupted: A signal stopped the jobs in progress (their checkpoints are saved).
        RuntimeError: A worker process died (killed, out of memory).
    """
    schedule = _Schedule(jobs, prepare)

    def report(outcome: Outcome) -> None:
        schedule.settle(outcome)
        finished(outcome)

    if workers <= 1 or len(jobs) <= 1:
        while True:
            job, blocked = schedule.take(set())
            for outcome in blocked:
                report(outcome)
            if job is None:
                return
            outcome = run_job(runner, job)
            if outcome.status == "interrupted":
                raise RunInterrupted(outcome.error)
            report(outcome)
    _run_parallel(runner, schedule, report, min(workers, len(jobs)), threads)


def _run_parallel(runner: Runner, schedule: _Schedule, report: Callable[[Outcome], None], workers: int,
                  threads: int) -> None:
    import multiprocessing

    from m2pt.train.signals import StopRequest

    context = multiprocessing.get_context("spawn")
    event = context.Event()
    options = RunnerOptions(output=runner.output, keep_heavy_files=runner.options.keep_heavy_files,
                            quiet=runner.options.quiet)
    interrupted: list[str] = []
    running: dict[Future, Job] = {}
    with StopRequest() as stop, ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                    initargs=(threads, event)) as pool:
        while True:
            while len(running) < workers and not event.is_set():
                job, blocked = schedule.take({job.key for job in running.values()})
                for outcome in blocked:
                    report(outcome)
                if job is None:
                    break
                with _worker_environment():
                    running[pool.submit(_run_in_worker, options, job)] = job
            if not running:
                break
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            started = list(running)
            for future in sorted(done, key=started.index):
                del running[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    event.set()
                    raise RuntimeError(
                        "a worker process died (killed, or out of memory: try fewer --workers); finished runs "
                        "are kept, rerun the same command to resume") from exc
                if outcome.status == "interrupted":
                    interrupted.append(outcome.error)
                elif outcome.status != "cancelled":
                    report(outcome)
            if (stop.requested or interrupted) and not event.is_set():
                event.set()
    if interrupted or stop.requested:
        reason = stop.signal_name or "a worker was stopped"
        raise RunInterrupted(f"{reason}; stopped: " + ("; ".join(interrupted) or "no run was in progress"))
