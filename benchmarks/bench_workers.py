"""Runs per hour of ``m2pt reproduce``: one process with N threads vs N single-threaded workers.

Run: PYTHONPATH=. python benchmarks/bench_workers.py [--runs 6] [--cores 2] [--profile full|quick]
[--modality image|audio]

Both sides execute the same fine-tuning runs of a reproduction profile (different seeds of the
baseline arm) into fresh folders, in the order serial, parallel, serial, so that a drift in
the machine's load shows up as a difference between the two serial timings. The parallel side
includes starting its worker processes (imports, data loading), as ``m2pt reproduce`` does
once per phase; with few short runs that start-up dominates. Prints wall times, the
throughput ratio, and whether both sides gave the same accuracies.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from m2pt.experiments.budgets import get_profile
from m2pt.experiments.plan import build_plan
from m2pt.experiments.records import read_rows
from m2pt.experiments.runner import Runner, RunnerOptions, execute


def timed(runs: list, folder: Path, workers: int, threads: int) -> tuple[float, dict[str, float]]:
    """Wall seconds of executing ``runs`` and each run's top-1."""
    torch.set_num_threads(threads)
    runner = Runner(RunnerOptions(output=folder, log=lambda message: None))
    started = time.perf_counter()
    counts = execute(runner, [], runs, progress=False, workers=workers, threads=threads)
    seconds = time.perf_counter() - started
    if counts["done"] != len(runs):
        raise SystemExit(f"runs failed: {counts}; see {folder / 'failures.jsonl'}")
    return seconds, {row["run_id"]: row["metrics"]["top1"] for row in read_rows(runner.results_path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--profile", default="full", choices=["full", "quick"])
    parser.add_argument("--cores", type=int, default=2, help="threads of the serial side = workers of the other")
    parser.add_argument("--modality", default="image", choices=["image", "audio"])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    _, runs = build_plan(get_profile(args.profile), seeds=range(args.runs),
                         only=[f"scratch/{args.modality}/baseline"])
    print(f"{len(runs)} runs of {runs[0].arm.name}, {args.profile} profile, {args.modality} target "
          f"({runs[0].options['epochs']} epochs of "
          f"{runs[0].options['data_options']['train_size']} items)")
    with tempfile.TemporaryDirectory() as tmp:
        timed(runs[:1], Path(tmp) / "warmup", 1, args.cores)  # built-in data generated and cached
        serial_a, top1_serial = timed(runs, Path(tmp) / "serial-a", 1, args.cores)
        parallel, top1_parallel = timed(runs, Path(tmp) / "parallel", args.cores, 1)
        serial_b, _ = timed(runs, Path(tmp) / "serial-b", 1, args.cores)
    serial = (serial_a + serial_b) / 2
    result = {"profile": args.profile, "runs": len(runs), "modality": args.modality, "cores": args.cores,
              "serial_seconds": [serial_a, serial_b],
              "parallel_seconds": parallel, "throughput_ratio": serial / parallel,
              "top1_serial": top1_serial, "top1_parallel": top1_parallel}
    print(f"1 process x {args.cores} threads: {serial_a:.1f} s, {serial_b:.1f} s (before / after)")
    print(f"{args.cores} workers x 1 thread:  {parallel:.1f} s")
    print(f"runs per hour, workers / one process: {serial / parallel:.2f}")
    print("top-1 per run (one process vs workers; thread counts differ, so the last digits may too):")
    for run_id in sorted(top1_serial):
        print(f"  {run_id}: {top1_serial[run_id]:.2f} vs {top1_parallel[run_id]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
