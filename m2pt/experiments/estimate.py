"""How long a plan will take: a short calibration of the step time of each kind of run.

For every (task, modality, preset, with pathways) in the plan, three optimiser steps are timed
on real batches after one warm-up step, loading (decode, fbank, collate) and compute apart; a
run's estimate is its step count times the compute time, plus loading once per item with
``cache_data`` (every epoch without), plus its test evaluations. Measured times are cached in
``<output>/calibration-<threads>thread.json``.

Three steps of one process alone run faster than a whole run beside other workers (shared cores
and memory bandwidth, evaluation, checkpoints): on the project's 2-core machine runs took 1.4-2.4x
their estimate. Once a study has finished runs, :func:`measured_factors` scales the estimate of
the rest by what those runs took.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import torch

from .plan import PretrainSpec, RunSpec

CALIBRATION_FILE = "calibration.json"


def _key(task: str, modality: str, preset: str, pathway: bool, linear_probe: bool = False) -> str:
    return f"{task}/{modality}/{preset}/{'pathway' if pathway else 'plain'}" + ("/linprobe" if linear_probe else "")


def _run_key(run: RunSpec) -> str:
    return _key("finetune", run.modality, run.preset, run.arm.aux is not None, bool(run.options.get("linear_probe")))


def steps_of(options: dict[str, Any], train_items: int) -> int:
    """Optimiser steps of a run with these options on ``train_items`` training items."""
    per_epoch = train_items // (options["batch_size"] * options.get("accum_steps", 1))
    if options.get("max_train_batches") is not None:
        per_epoch = min(per_epoch, options["max_train_batches"])
    return per_epoch * options["epochs"]


def _time_steps(options: dict[str, Any], with_pathway: bool, repeats: int = 3) -> dict[str, float]:
    """``{"load": s, "compute": s}`` per optimiser step (collate / forward + backward + AdamW)."""
    import torch.nn.functional as F

    from m2pt.pathway import add_pathways, param_groups
    from m2pt.train.config import TrainConfig
    from m2pt.train.data import build_model, build_split
    from m2pt.train.mae_model import MaskedAutoencoder

    config = TrainConfig(**{**{k: v for k, v in options.items() if k != "output"}, "cache_data": False})
    dataset = build_split(config, "train")
    torch.manual_seed(0)
    if config.task == "pretrain":
        model: torch.nn.Module = MaskedAutoencoder(build_model(config, 0), config.modality, config.mask_ratio,
                                                   config.decoder_dim, config.decoder_depth)
        loss_fn = lambda m, x, y: m(x)  # noqa: E731
    else:
        model = build_model(config, dataset.num_classes)
        if with_pathway:
            aux = {k: torch.randn_like(v) * 0.02 for k, v in model.state_dict().items() if k.startswith("blocks.")}
            add_pathways(model, aux, config.pathway if config.linear_probe else None)
        if config.linear_probe:
            from m2pt.train.linear_probe import prepare_linear_probe

            prepare_linear_probe(model)
        loss_fn = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    optimizer = torch.optim.AdamW(param_groups(model), lr=1e-4)
    batch = config.batch_size
    loads, computes = [], []
    for step in range(repeats + 1):
        started = time.perf_counter()
        indices = [(step * batch + i) % len(dataset) for i in range(batch)]
        x, y = torch.utils.data.default_collate([dataset[i] for i in indices])
        loaded = time.perf_counter()
        loss_fn(model, x, y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loads.append(loaded - started)
        computes.append(time.perf_counter() - loaded)

    def median(values: list[float]) -> float:
        values = sorted(values[1:])
        return values[len(values) // 2]
    return {"load": median(loads), "compute": median(computes)}


def calibrate(pretrainings: Sequence[PretrainSpec], runs: Sequence[RunSpec], cache: Optional[Path] = None,
              log: Any = print) -> dict[str, dict[str, float]]:
    """Load and compute seconds per step of every kind of run in the plan (cached in ``cache``)."""
    known: dict[str, Any] = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    known = {k: v for k, v in known.items() if isinstance(v, dict)}
    needed: dict[str, dict[str, Any]] = {}
    for spec in pretrainings:
        needed.setdefault(_key("pretrain", spec.options["modality"], spec.options["preset"], False), spec.options)
    for run in runs:
        probe = bool(run.options.get("linear_probe"))
        needed.setdefault(_run_key(run), {**run.options, "seed": run.seed,
                                          **({"pathway": dict(run.arm.pathway)} if probe else {})})
    for key, options in needed.items():
        if key in known:
            continue
        started = time.perf_counter()
        known[key] = _time_steps(options, with_pathway=key.endswith("/pathway"))
        log(f"  calibration {key}: load {known[key]['load']:.3f} + compute {known[key]['compute']:.3f} s/step "
            f"(measured in {time.perf_counter() - started:.0f} s)")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(known, indent=2, sort_keys=True))
    return known


def run_seconds(options: dict[str, Any], step: dict[str, float], overhead_seconds: float = 3.0) -> float:
    """Estimated seconds of one run with these options and calibrated ``{"load", "compute"}`` step times."""
    data = options["data_options"]
    train_items, test_items = data["train_size"], data.get("test_size", 0) or 0
    steps = steps_of(options, train_items)
    epochs = options["epochs"]
    evals = 1 if options.get("task") == "pretrain" or not options.get("eval_every", 1) else epochs
    test_batches = test_items / options["batch_size"]
    load_passes = 1 if options.get("cache_data") else epochs
    seconds = steps * step["compute"] + (train_items / options["batch_size"]) * step["load"] * load_passes
    seconds += evals * test_batches * step["compute"] / 3 + test_batches * step["load"] * (1 if options.get(
        "cache_data") else evals)
    return seconds + overhead_seconds


OVERALL = "overall"


def measured_factors(finished: Iterable[tuple[RunSpec, Mapping[str, Any]]], step_times: dict[str, dict[str, float]],
                     min_runs: int = 3) -> dict[str, float]:
    """How many times its estimate a finished run took: the median per kind of run, and overall.

    Args:
        finished: Finished runs with their ``results.jsonl`` rows. Rows without a measured
            ``wall_seconds`` (imported, or found finished in their folder) and kinds without
            calibrated step times are skipped. A resumed run measured only its last part; the
            median keeps such runs from pulling the factor down.
        step_times: Calibrated step times (:func:`calibrate`).
        min_runs: Finished runs a kind needs for a factor of its own; the others use ``"overall"``.

    Returns:
        ``{kind: factor}`` for kinds with ``min_runs`` runs, and ``"overall"`` (the median over
        every run) when any run counts; empty when none does.
    """
    ratios: dict[str, list[float]] = {}
    for run, row in finished:
        wall, key = row.get("wall_seconds"), _run_key(run)
        if not isinstance(wall, (int, float)) or not math.isfinite(wall) or wall <= 0 or key not in step_times:
            continue
        ratios.setdefault(key, []).append(wall / run_seconds(run.options, step_times[key]))
    factors = {key: statistics.median(values) for key, values in ratios.items() if len(values) >= min_runs}
    every = [ratio for values in ratios.values() for ratio in values]
    if every:
        factors[OVERALL] = statistics.median(every)
    return factors


def _item_epochs(options: Mapping[str, Any]) -> Optional[int]:
    """Training items times epochs of a run (None when its options do not say)."""
    items, epochs = (options.get("data_options") or {}).get("train_size"), options.get("epochs")
    return items * epochs if isinstance(items, int) and isinstance(epochs, int) and items * epochs > 0 else None


def measured_rates(finished: Iterable[tuple[RunSpec, Mapping[str, Any]]]) -> dict[str, float]:
    """Seconds per training item and epoch that this study's finished runs took, median per kind.

    The estimate without a calibration: the runs ran beside the study's other workers, so their
    pace already holds what sharing the cores costs. Rows without a measured ``wall_seconds``
    (imported, or found finished in their folder) are skipped.
    """
    rates: dict[str, list[float]] = {}
    for run, row in finished:
        wall, work = row.get("wall_seconds"), _item_epochs(run.options)
        if isinstance(wall, (int, float)) and math.isfinite(wall) and wall > 0 and work:
            rates.setdefault(_run_key(run), []).append(wall / work)
    return {key: statistics.median(values) for key, values in rates.items()}


def measured_estimates(runs: Iterable[RunSpec], rates: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """``({run id: seconds}, [kinds of the runs left out])`` from :func:`measured_rates`: runs
    of a kind no finished run measured are left out, their kinds named once each."""
    seconds: dict[str, float] = {}
    missing: list[str] = []
    for run in runs:
        key, work = _run_key(run), _item_epochs(run.options)
        if key in rates and work:
            seconds[run.run_id] = rates[key] * work
        elif key not in missing:
            missing.append(key)
    return seconds, missing


def describe_factors(factors: Mapping[str, float]) -> str:
    """One log line: the overall factor and those of the kinds that have their own."""
    kinds = ", ".join(f"{key} x{factor:.2f}" for key, factor in sorted(factors.items()) if key != OVERALL)
    return (f"estimates scaled by what this study's finished runs took (median of measured / estimated): "
            f"x{factors[OVERALL]:.2f} overall" + (f"; {kinds}" if kinds else ""))


def estimate_seconds(pretrainings: Iterable[PretrainSpec], runs: Iterable[RunSpec],
                     step_times: dict[str, dict[str, float]],
                     factors: Optional[Mapping[str, float]] = None) -> dict[str, float]:
    """Estimated seconds per pretraining (``pretrain/<id>``) and per run id.

    Args:
        pretrainings: Pretrainings to estimate.
        runs: Fine-tuning runs to estimate.
        step_times: Calibrated step times (:func:`calibrate`).
        factors: :func:`measured_factors`: a run's estimate is multiplied by its kind's factor,
            or the overall one (pretrainings always take the overall one); None or empty leaves
            the calibration's estimate.
    """
    factors = factors or {}
    overall = factors.get(OVERALL, 1.0)
    out: dict[str, float] = {}
    for spec in pretrainings:
        key = _key("pretrain", spec.options["modality"], spec.options["preset"], False)
        out[f"pretrain/{spec.run_id}"] = run_seconds(spec.options, step_times[key]) * overall
    for run in runs:
        key = _run_key(run)
        out[run.run_id] = run_seconds(run.options, step_times[key]) * factors.get(key, overall)
    return out


def format_duration(seconds: float) -> str:
    """``1 h 05 min`` / ``12 min 30 s`` / ``45 s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
