"""How long a plan will take: a short calibration of the step time of each kind of run.

For every (task, modality, preset, with pathways) in the plan, three optimiser steps are timed
on real batches after one warm-up step, loading (decode, fbank, collate) and compute apart; a
run's estimate is its step count times the compute time, plus loading once per item with
``cache_data`` (every epoch without), plus its test evaluations. Measured times are cached in
``<output>/calibration-<threads>thread.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch

from .plan import PretrainSpec, RunSpec

CALIBRATION_FILE = "calibration.json"


def _key(task: str, modality: str, preset: str, pathway: bool, linear_probe: bool = False) -> str:
    return f"{task}/{modality}/{preset}/{'pathway' if pathway else 'plain'}" + ("/linprobe" if linear_probe else "")


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
        needed.setdefault(_key("finetune", run.modality, run.preset, run.arm.aux is not None, probe),
                          {**run.options, "seed": run.seed, **({"pathway": dict(run.arm.pathway)} if probe else {})})
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


def estimate_seconds(pretrainings: Iterable[PretrainSpec], runs: Iterable[RunSpec],
                     step_times: dict[str, dict[str, float]]) -> dict[str, float]:
    """Estimated seconds per pretraining (``pretrain/<id>``) and per run id."""
    out: dict[str, float] = {}
    for spec in pretrainings:
        key = _key("pretrain", spec.options["modality"], spec.options["preset"], False)
        out[f"pretrain/{spec.run_id}"] = run_seconds(spec.options, step_times[key])
    for run in runs:
        key = _key("finetune", run.modality, run.preset, run.arm.aux is not None, bool(run.options.get("linear_probe")))
        out[run.run_id] = run_seconds(run.options, step_times[key])
    return out


def format_duration(seconds: float) -> str:
    """``1 h 05 min`` / ``12 min 30 s`` / ``45 s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
