"""The time estimate: step counts and the load/compute model."""

from __future__ import annotations

import pytest

from m2pt.experiments.estimate import format_duration, run_seconds, steps_of


def _options(cache: bool) -> dict:
    return {"data_options": {"train_size": 1000, "test_size": 300}, "batch_size": 100, "epochs": 3,
            "eval_every": 1, "cache_data": cache, "task": "finetune"}


def test_steps_of():
    assert steps_of(_options(True), 1000) == 30
    assert steps_of({**_options(True), "max_train_batches": 4}, 1000) == 12
    assert steps_of({**_options(True), "accum_steps": 2}, 1000) == 15


def test_cached_inputs_are_loaded_once():
    step = {"load": 1.0, "compute": 3.0}
    # 30 steps x 3 s + loading 10 batches once + 3 evals x 3 batches x 1 s + loading 3 test batches once + 3 s
    assert run_seconds(_options(True), step) == pytest.approx(90 + 10 + 9 + 3 + 3)
    assert run_seconds(_options(False), step) == pytest.approx(90 + 30 + 9 + 9 + 3)


def test_format_duration():
    assert format_duration(45) == "45 s"
    assert format_duration(750) == "12 min 30 s"
    assert format_duration(3900) == "1 h 05 min"


def test_plan_description_with_estimates_of_only_some_pretrainings():
    from m2pt.experiments.budgets import get_profile
    from m2pt.experiments.plan import build_plan
    from m2pt.experiments.reproduce import describe_plan

    profile = get_profile("quick")
    pretrainings, runs = build_plan(profile, seeds=[0])
    estimates = {run.run_id: 30.0 for run in runs}  # pretrainings already finished: no estimate
    estimates[f"pretrain/{pretrainings[0].run_id}"] = 90.0
    text = describe_plan(profile, pretrainings, runs, estimates)
    assert f"pretrain {pretrainings[0].source}" in text and "~1 min 30 s" in text
    assert f"estimated time: {format_duration(sum(estimates.values()))}" in text
