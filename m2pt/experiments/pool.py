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


def run_jobs(runner: Runner, jobs: Sequence[Job], finished: Callable[[Outcome], None], workers: int = 1,
             threads: int = 1) -> None:
    """Run ``jobs``, calling ``finished`` with each outcome as it comes (in this process).

    Raises:
        RunInterrupted: A signal stopped the jobs in progress (their checkpoints are saved).
        RuntimeError: A worker process died (killed, out of memory).
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            outcome = run_job(runner, job)
            if outcome.status == "interrupted":
                raise RunInterrupted(outcome.error)
            finished(outcome)
        return
    _run_parallel(runner, jobs, finished, min(workers, len(jobs)), threads)


def _run_parallel(runner: Runner, jobs: Sequence[Job], finished: Callable[[Outcome], None], workers: int,
                  threads: int) -> None:
    import multiprocessing

    from m2pt.train.signals import StopRequest

    context = multiprocessing.get_context("spawn")
    event = context.Event()
    options = RunnerOptions(output=runner.output, keep_heavy_files=runner.options.keep_heavy_files,
                            quiet=runner.options.quiet)
    interrupted: list[str] = []
    with StopRequest() as stop, ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                    initargs=(threads, event)) as pool:
        with _worker_environment():
            submitted = [pool.submit(_run_in_worker, options, job) for job in jobs]
        order = {future: index for index, future in enumerate(submitted)}
        pending: set[Future] = set(submitted)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=order.get):
                if future.cancelled():
                    continue
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
                    finished(outcome)
            if (stop.requested or interrupted) and not event.is_set():
                event.set()
                for future in pending:
                    future.cancel()
    if interrupted or stop.requested:
        reason = stop.signal_name or "a worker was stopped"
        raise RunInterrupted(f"{reason}; stopped: " + ("; ".join(interrupted) or "no run was in progress"))
