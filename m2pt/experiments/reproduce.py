"""``reproduce``: plan, estimate, run and aggregate the reproduction of the paper's experiments."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .aggregate import summarize, write_tables
from .budgets import Profile, get_profile
from .convergence import record_pretrain_curves, study_sections
from .estimate import (CALIBRATION_FILE, OVERALL, calibrate, describe_factors, estimate_seconds, format_duration,
                       measured_factors)
from .figures import write_figures
from .lr_budget import describe_sums
from .adopt import adopt_finished_runs
from .merge import import_results
from .plan import (PretrainSpec, RunSpec, build_plan, current_rows, extra_seed_runs, in_profile_order,
                   lambda_lr_sums_of, pretrainings_for, select_runs)
from .pool import resolve_workers
from .records import RESULTS_FILE, latest_rows, read_rows
from .runner import Runner, RunnerOptions, execute


def describe_plan(profile: Profile, pretrainings: Sequence[PretrainSpec], runs: Sequence[RunSpec],
                  estimates: Optional[dict[str, float]] = None) -> str:
    """The plan as text: pretrainings, then one line per (setting, target, arm) with its seeds."""
    lines = [f"profile {profile.name}: {len(pretrainings)} MAE pretraining(s), {len(runs)} fine-tuning run(s)"]
    for spec in pretrainings:
        o = spec.options
        seconds = (estimates or {}).get(f"pretrain/{spec.run_id}")
        extra = f", ~{format_duration(seconds)}" if seconds is not None else ""
        lines.append(f"  pretrain {spec.source:<22} {o['preset']}, {o['data_options']['train_size']} items x "
                     f"{o['epochs']} epochs{extra}")
    cells: dict[tuple[str, str, str], list[RunSpec]] = {}
    for run in runs:
        cells.setdefault((run.setting, run.modality, run.arm.name), []).append(run)
    with_sums = profile.min_lambda_lr_sum > 0
    header = f"  {'setting':<8} {'target':<6} {'arm':<24} {'group':<10} {'seeds':<8} "
    lines.append(header + ("Σ lr of λ  " if with_sums else "") + "description")
    sums_cache: dict[str, str] = {}
    for (setting, modality, arm), members in cells.items():
        seeds = ",".join(str(r.seed) for r in members)
        first = members[0]
        line = f"  {setting:<8} {modality:<6} {arm:<24} {first.arm.group:<10} {seeds:<8} "
        if with_sums:
            key = json.dumps([first.options, first.arm.pathway], sort_keys=True, default=str)
            if key not in sums_cache:
                sums_cache[key] = describe_sums(lambda_lr_sums_of(first))
            line += f"{sums_cache[key] if first.arm.aux else '–':<10} "
        lines.append(line + first.arm.description)
    by_target = Counter(f"{r.modality}/{r.preset}" for r in runs)
    lines.append("  runs per target: " + ", ".join(f"{k} {v}" for k, v in sorted(by_target.items())))
    for modality in dict.fromkeys(r.modality for r in runs):
        o = profile.finetune_options(modality)
        extra = {k: v for k, v in o["data_options"].items() if k not in ("train_size", "test_size")}
        lines.append(f"  budget {modality}: {o['data_options']['train_size']} train / "
                     f"{o['data_options']['test_size']} test items, {o['epochs']} epochs, batch {o['batch_size']}"
                     + (f", {extra}" if extra else ""))
    for modality in dict.fromkeys(r.modality for r in runs if r.arm.group == "budget"):
        sizes = sorted({r.options["data_options"]["train_size"] for r in runs
                        if r.modality == modality and r.arm.group == "budget"})
        o = profile.budget_base[modality]
        lines.append(f"  gain vs budget {modality}: {' / '.join(map(str, sizes))} train items "
                     f"({' / '.join(f'{m}x' for m in profile.budget_multipliers)} the quick budget), {o['epochs']} "
                     f"epochs, batch {o['batch_size']}")
    fixacc = next((r for r in runs if r.arm.group == "fixacc"), None)
    if fixacc is not None:
        o = fixacc.options
        lines.append(f"  fix acc {fixacc.modality}: linear probe ({o['optimizer']}, blr {o['blr']:g}, weight decay "
                     f"{o['weight_decay']:g}) of the target MAE-pretrained on its modality, "
                     f"{o['data_options']['train_size']} train items, {o['epochs']} epochs, batch {o['batch_size']}")
    if any(r.arm.group == "plateau" for r in runs):
        lines.append("  plateau: a target has reached it when its baseline trained twice as long (baseline-x2) "
                     "gains < 1 point")
    if profile.extra_seeds:
        lines.append(f"  then seeds {','.join(map(str, profile.extra_seeds))} for every arm (and its baseline) whose "
                     f"gain has 2·SE > {profile.extra_seed_se:g} point(s) once its seeds have finished")
    if with_sums:
        lines.append(f"  Σ lr of λ: sum over steps of lr × λ's lr_scale, per block; at least "
                     f"{profile.min_lambda_lr_sum:g} in groups {', '.join(profile.lr_sum_groups)} (checked)")
    if estimates:
        lines.append(f"  estimated time: {format_duration(sum(estimates.values()))}")
    return "\n".join(lines)


def finish_time(seconds: float, now: Optional[float] = None) -> str:
    """Local clock time ``seconds`` from ``now``: ``HH:MM`` today, ``Mon 05 Dec HH:MM`` on a later day."""
    now = time.time() if now is None else now
    end = time.localtime(now + seconds)
    same_day = time.strftime("%Y%m%d", end) == time.strftime("%Y%m%d", time.localtime(now))
    return time.strftime("%H:%M" if same_day else "%a %d %b %H:%M", end)


def tier_milestones(profile: Profile, pretrainings: Sequence[PretrainSpec], runs: Sequence[RunSpec],
                    estimates: dict[str, float], workers: int) -> list[str]:
    """When each :func:`~m2pt.experiments.plan.priority` tier of the pending runs should be done."""
    from .plan import priority

    elapsed = sum(estimates.get(f"pretrain/{p.run_id}", 0.0) for p in pretrainings) / max(1, workers)
    tiers: dict[int, list[RunSpec]] = {}
    for run in runs:
        tiers.setdefault(priority(profile, run), []).append(run)
    lines = [f"  pretrainings: {format_duration(elapsed)}"]
    for tier, members in sorted(tiers.items()):
        elapsed += sum(estimates.get(r.run_id, 0.0) for r in members) / max(1, workers)
        cells = list(dict.fromkeys(f"{r.modality}/{r.arm.name}" for r in members))
        shown = ", ".join(cells[:6]) + (f", ... ({len(cells)} arms)" if len(cells) > 6 else "")
        lines.append(f"  tier {tier} ({len(members)} runs: {shown}) done after about {format_duration(elapsed)}")
    return lines


def aggregate(output: Path, log: Callable[[str], None] = print,
              runs: Optional[Sequence[RunSpec]] = None) -> list[Path]:
    """Rewrite ``summary.md``, ``summary.csv`` and ``figures/`` from ``results.jsonl``.

    Args:
        output: The study's folder.
        log: Where messages go.
        runs: The plan. Given, rows that are not its results (a budget changed since they ran,
            an arm no longer planned) are left out and counted in the log; None keeps every row.
    """
    rows = list(latest_rows(read_rows(output / RESULTS_FILE)).values())
    if runs is not None:
        rows, stale = current_rows(runs, rows)
        if stale:
            log(f"{stale} row(s) of {output / RESULTS_FILE} left out of the summary: their runs are not in the "
                "plan as it stands (changed budget or arm)")
    if not rows:
        log(f"no finished runs in {output / RESULTS_FILE} yet")
        return []
    summaries = summarize(rows)
    record_pretrain_curves(output)
    written = write_tables(summaries, output, study_sections(summaries, rows, output))
    written += write_figures(summaries, rows, output / "figures")
    return written


def _extra_runs(profile: Profile, planned: Sequence[RunSpec], rows: list[dict[str, Any]],
                only: Sequence[str]) -> list[RunSpec]:
    """The extra-seed runs the finished ``rows`` call for in the whole plan, of them those
    ``only`` selects: ``--only 'scratch/audio/aux-point/seed3'`` picks one extra run (and its baseline)."""
    return select_runs(extra_seed_runs(profile, planned, rows), only)


def _extra_seeds_rule(profile: Profile) -> str:
    return (f"seeds {','.join(map(str, profile.extra_seeds))} where 2·SE of a gain > {profile.extra_seed_se:g} "
            "point(s)")


def reproduce(profile_name: str = "full", output: str | Path = "runs/reproduce", seeds: Optional[Sequence[int]] = None,
              only: Sequence[str] = (), list_only: bool = False, estimate: bool = True, threads: int = 0,
              workers: int = 0, keep_heavy_files: bool = False, aggregate_only: bool = False, progress: bool = True,
              estimate_only: bool = False, import_from: Sequence[str | Path] = (), status_only: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or list) the reproduction; see ``m2pt reproduce --help``.

    ``workers=0`` runs one single-threaded worker process per core on up to 2 cores, then
    workers of 2 threads (at most 8; :func:`~m2pt.experiments.pool.default_workers`).
    ``threads=0`` gives each of several workers cores / workers threads; with ``workers=1`` it
    picks 1 or 2 torch threads by timing a step with each.

    With ``estimate_only`` the step times are calibrated and the estimate printed, nothing runs.
    With ``status_only`` the study's folder is read and where it stands is printed
    (:func:`~m2pt.experiments.status.study_status`): nothing is written, safe beside a running study.
    ``import_from`` names other copies of the study (folders with a ``results.jsonl``) whose
    finished runs are brought in first (:func:`~m2pt.experiments.merge.import_results`).
    A profile with ``extra_seeds`` adds the extra seeds of every comparison whose gain is too
    uncertain (:func:`~m2pt.experiments.plan.extra_seed_runs`; decided over the whole plan,
    ``only`` selects among them as among the planned runs): those its finished results
    already decide join their tier at the start (so a resumed study runs them before the next
    tier), the rest follow the planned runs. Explicit ``seeds`` turn that off. A planned run
    that computes what a finished run of another arm computed (same fingerprint) adopts its
    result (:func:`~m2pt.experiments.adopt.adopt_finished_runs`).

    Returns:
        ``{"runs": n, "pretrainings": n, "counts": {...}, "written": [...], "seconds": s}``
        (``counts`` absent with ``list_only`` / ``aggregate_only`` / ``estimate_only`` / ``status_only``;
        ``extra_runs`` present when extra seeds ran).
    """
    import torch

    profile = get_profile(profile_name)
    pretrainings, runs = build_plan(profile, seeds, only)
    output = Path(output)
    result: dict[str, Any] = {"runs": len(runs), "pretrainings": len(pretrainings)}
    if list_only:
        log(describe_plan(profile, pretrainings, runs))
        return result
    # every cell of the profile counts in the summary, also those ``only`` leaves out this time
    planned = build_plan(profile, seeds)[1] if only else runs
    if status_only:
        from .status import study_status

        rows = list(latest_rows(read_rows(output / RESULTS_FILE)).values())
        every_extra = extra_seed_runs(profile, planned, rows) if not seeds else []
        runs = in_profile_order(profile, [*runs, *select_runs(every_extra, only)])
        log("\n".join(study_status(profile, pretrainings_for(profile, runs), runs, output,
                                    paced_by=[*planned, *every_extra])))
        return result
    for source in import_from:
        report = import_results(Path(source), output)
        log(f"imported from {source}: {report.rows_added} finished run(s), {report.curves_added} pretraining "
            f"curve(s); {report.rows_present} run(s) already here kept their own result")
    if aggregate_only:
        result["written"] = [str(p) for p in aggregate(output, log, planned)]
        return result
    started = time.perf_counter()
    workers, threads = resolve_workers(workers, threads)
    if threads <= 0:
        from .threads import choose_threads

        threads, timings = choose_threads()
        log("threads: " + ", ".join(f"{n}: {t:.3f} s/step" for n, t in timings.items()) + f" -> using {threads}")
    torch.set_num_threads(threads)
    output.mkdir(parents=True, exist_ok=True)
    runner = Runner(RunnerOptions(output=output, keep_heavy_files=keep_heavy_files, log=log))
    adopt_finished_runs(output, planned, runner.run_folder, log)
    decided = _extra_runs(profile, planned, list(runner.finished_rows().values()), only) if not seeds else []
    if decided:
        adopt_finished_runs(output, decided, runner.run_folder, log)
        log(f"{len(decided)} extra run(s) join their tiers: {_extra_seeds_rule(profile)}")
        runs = in_profile_order(profile, [*runs, *decided])
        pretrainings = pretrainings_for(profile, runs)
    (output / "plan.json").write_text(json.dumps({
        "profile": profile.name, "seeds": list(seeds or profile.seeds), "only": list(only), "workers": workers,
        "threads": threads,
        "pretrainings": [{"source": p.source, "options": p.options} for p in pretrainings],
        "runs": [{"run_id": r.run_id, "fingerprint": r.fingerprint(), "arm": r.arm.name, "aux": r.arm.aux,
                  "pathway": r.arm.pathway, "baseline": r.arm.baseline, "options": r.options} for r in runs]},
        indent=1))
    estimates: dict[str, float] = {}
    if estimate:
        finished = runner.finished_rows()
        pending = [r for r in runs if not runner.is_finished(r, finished)]
        log(f"calibrating step times ({threads} thread(s)); built-in data is generated on first use ...")
        cache = output / CALIBRATION_FILE.replace(".json", f"-{threads}thread.json")
        step_times = calibrate(pretrainings, pending, cache=cache, log=log)
        waiting = {run.run_id for run in pending}
        factors = measured_factors([(run, finished[run.run_id]) for run in runs if run.run_id not in waiting],
                                   step_times)
        if OVERALL in factors:
            log(describe_factors(factors))
        estimates = estimate_seconds(pretrainings, pending, step_times, factors)
        for spec in pretrainings:
            if runner.encoder_path(spec.source).is_file():
                estimates.pop(f"pretrain/{spec.run_id}", None)
        seconds = sum(estimates.values()) / workers
        log(describe_plan(profile, pretrainings, runs, estimates).splitlines()[0])
        log(f"{len(runs) - len(pending)} run(s) already finished; estimated time for the rest with {workers} "
            f"worker(s) of {threads} thread(s): {format_duration(seconds)} (finishing around "
            f"{finish_time(seconds)})")
        if profile.order == "informative":
            for line in tier_milestones(profile, pretrainings, pending, estimates, workers):
                log(line)
    if estimate_only:
        result["estimates"] = estimates
        return result
    counts = execute(runner, pretrainings, runs, estimates, progress=progress, workers=workers, threads=threads)
    extra = _extra_runs(profile, planned, list(runner.finished_rows().values()), only) if not seeds else []
    if extra:
        log(f"{len(extra)} extra run(s): {_extra_seeds_rule(profile)}")
        (output / "extra_runs.json").write_text(json.dumps([r.run_id for r in extra], indent=1))
        more = execute(runner, pretrainings_for(profile, extra), extra, {}, progress=progress, workers=workers,
                       threads=threads)
        counts = {k: counts[k] + more[k] for k in counts}
    if decided or extra:
        result["extra_runs"] = len(decided) + len(extra)
    result["counts"] = counts
    result["written"] = [str(p) for p in aggregate(output, log, planned)]
    result["seconds"] = time.perf_counter() - started
    log(f"done in {format_duration(result['seconds'])}: {counts['done']} run(s) done, {counts['skipped']} skipped, "
        f"{counts['failed']} failed; results in {output}")
    return result
