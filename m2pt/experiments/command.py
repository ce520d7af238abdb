"""The ``m2pt reproduce`` subcommand (registered by ``m2pt.cli`` with :func:`add_reproduce_command`)."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """examples:
  m2pt reproduce --list                    print the full plan (under 2 h on 2 CPU cores)
  m2pt reproduce --quick --output results/quick
  m2pt reproduce --profile converged --list          targets near their plateau, λ free to engage
  m2pt reproduce --profile converged --estimate-only --output results/converged
  nohup nice m2pt reproduce --profile converged --output results/converged &   resumable
  m2pt reproduce --profile converged --output DIR --import-results results/converged   go on from the committed runs
  m2pt reproduce --profile converged --output DIR --status   where a running or stopped study stands
  scripts/gpu_reproduce.sh --list          the GPU profile (scripts/gpu_reproduce.sh runs it unattended)
  m2pt reproduce --output /data/m2pt-full  the full set; rerun the same command to resume
  m2pt reproduce --only image --only 'aux-point*' --seeds 5
  m2pt reproduce --workers 1 --threads 2   one run at a time, 2 torch threads
  m2pt reproduce --output /data/m2pt-full --aggregate-only   rewrite tables and figures

--only matches an arm (aux-point, random-point, small-aux-minilm, ...), a target modality, a
setting (scratch, mae), a group (main, minilm, ablation, lambda) or a run id, with shell
wildcards; the baseline of every selected arm is always kept. Extra seeds are selected the same
way: --only 'scratch/audio/aux-point/seed3' runs that extra seed and its baseline's.

profiles: quick (= --quick), full (default), converged (many CPU hours: every target towards
its plateau, λ's learning-rate sum >= 1, random and permuted controls, gain vs budget, plateau
check, seeds 3-4 added where 2·SE of a gain > 1 point), gpu (one GPU, about 10 minutes)."""


def parse_seeds(text: str) -> list[int]:
    """``"3"`` → seeds 0, 1, 2; ``"0,4,7"`` → exactly those seeds."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        count = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes a count (3) or a list (0,1,2), got {text!r}") from exc
    if count < 1:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return list(range(count))


def _count_or_auto(text: str) -> int:
    """``"auto"`` → 0; a positive integer → itself."""
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return value


PROFILE_NAMES = ("quick", "full", "converged", "gpu")


def profile_name(args: argparse.Namespace) -> str:
    """The profile of the parsed arguments (``--quick`` is ``--profile quick``).

    Raises:
        ValueError: ``--quick`` with another ``--profile``.
    """
    if args.quick and args.profile not in (None, "quick"):
        raise ValueError(f"--quick and --profile {args.profile} contradict each other; drop one")
    return "quick" if args.quick else (args.profile or "full")


def add_reproduce_command(commands: Any) -> argparse.ArgumentParser:
    """Add ``reproduce`` to the ``m2pt`` subcommands (``commands`` is argparse's subparsers object)."""
    parser = commands.add_parser(
        "reproduce", help="run the paper's experiments at CPU scale (baselines, pathways, controls, ablations)",
        description="Every target modality with pathways from MAE-pretrained auxiliaries of the other modalities, "
                    "a std-matched random control and the real MiniLM text model, from scratch and MAE-pretrained, "
                    "plus the paper's ablations and a λ study; tables, heatmaps and λ plots at the end. Resumable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a subset that shows the whole pipeline (about 8 min on 2 cores); = --profile quick")
    parser.add_argument("--profile", choices=sorted(PROFILE_NAMES), default=None,
                        help="budgets and arms: quick, full (default), converged or gpu (see below)")
    parser.add_argument("--output", "-o", help="results folder (default runs/reproduce-<profile>)")
    parser.add_argument("--seeds", type=parse_seeds, help="a count (3 = seeds 0,1,2) or a list (0,1,2); "
                                                          "default 3 (full) or 2 (quick)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only matching arms/targets/settings/groups (repeatable)")
    parser.add_argument("--list", dest="list_only", action="store_true", help="print the plan and exit")
    parser.add_argument("--workers", default="auto", type=_count_or_auto,
                        help="runs at once, each in its own process; auto (default): one per core on up to 2 cores, "
                             "then one per 2 cores, at most 8 (on 2 cores, 2 workers of 1 thread finish 1.11x more "
                             "runs per hour than 1 process of 2 threads)")
    parser.add_argument("--threads", default="auto", type=_count_or_auto,
                        help="torch threads per worker; auto (default): cores / workers, or with --workers 1 the "
                             "faster of 1 and 2 threads timed on a step (on a 2-core machine that other jobs use, "
                             "1 thread can be several times faster)")
    parser.add_argument("--no-estimate", dest="estimate", action="store_false",
                        help="skip the calibration that estimates the time")
    parser.add_argument("--estimate-only", action="store_true",
                        help="calibrate the step times, print the plan's estimated time and exit")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep model files and checkpoints of finished runs (default: deleted)")
    parser.add_argument("--aggregate-only", action="store_true", help="only rewrite tables and figures")
    parser.add_argument("--status", action="store_true",
                        help="print where the study in --output stands (finished runs per tier, runs in progress "
                             "with their epoch and accuracy, failures, time left) and exit; reads files only, safe "
                             "beside the running study")
    parser.add_argument("--import-results", action="append", default=[], metavar="FOLDER",
                        help="first bring in the finished runs of another copy of the study (a folder with "
                             "results.jsonl, e.g. the committed results/converged on a new machine, or a part "
                             "run elsewhere with --only); runs this folder already has keep their result "
                             "(repeatable)")
    parser.set_defaults(func=run_reproduce_command)
    return parser


def run_reproduce_command(args: argparse.Namespace) -> int:
    import sys

    from .merge import MissingResults
    from .reproduce import reproduce
    from .runner import PretrainingChanged, RunInterrupted

    try:
        profile = profile_name(args)
        if args.estimate_only and not args.estimate:
            raise ValueError("--estimate-only and --no-estimate contradict each other; drop one")
        if args.status:
            other = [flag for flag, given in (("--list", args.list_only), ("--estimate-only", args.estimate_only),
                                              ("--aggregate-only", args.aggregate_only),
                                              ("--import-results", bool(args.import_results))) if given]
            if other:
                raise ValueError(f"--status only reads the study; it does not go with {', '.join(other)}")
    except ValueError as exc:
        print(f"m2pt reproduce: {exc}", file=sys.stderr)
        return 2
    output = args.output or f"runs/reproduce-{profile}"
    try:
        reproduce(profile_name=profile, output=output, seeds=args.seeds, only=args.only, list_only=args.list_only,
                  estimate=args.estimate, threads=args.threads, workers=args.workers,
                  keep_heavy_files=args.keep_checkpoints,
                  aggregate_only=args.aggregate_only, estimate_only=args.estimate_only,
                  import_from=args.import_results, status_only=args.status)
    except MissingResults as exc:
        print(f"m2pt reproduce: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"m2pt reproduce: {exc}; finished runs are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except PretrainingChanged as exc:
        print(f"m2pt reproduce: {exc}", file=sys.stderr)
        return 2
    return 0
