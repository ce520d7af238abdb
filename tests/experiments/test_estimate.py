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


def _quick_runs():
    from m2pt.experiments.budgets import get_profile
    from m2pt.experiments.plan import build_plan

    return build_plan(get_profile("quick"), seeds=[0, 1, 2])


_STEP = {"load": 0.01, "compute": 0.1}


def _step_times(runs) -> dict:
    from m2pt.experiments.estimate import _run_key

    times = {_run_key(run): _STEP for run in runs}
    times.update({f"pretrain/{m}/tiny/plain": _STEP for m in ("image", "audio", "video", "point")})
    return times


def test_finished_runs_scale_the_estimate_of_their_kind_and_the_overall_one_scales_the_rest():
    from m2pt.experiments.estimate import OVERALL, _run_key, estimate_seconds, measured_factors

    pretrainings, runs = _quick_runs()
    times = _step_times(runs)
    plain = [run for run in runs if run.arm.aux is None]
    kind = _run_key(plain[0])
    same_kind = [run for run in plain if _run_key(run) == kind]
    assert len(same_kind) >= 3
    finished = [(run, {"wall_seconds": 3.0 * run_seconds(run.options, _STEP)}) for run in same_kind[:3]]
    finished.append((same_kind[0], {"wall_seconds": float("nan")}))  # imported: no measured time
    finished.append((same_kind[1], {"wall_seconds": None}))
    other = next(run for run in runs if _run_key(run) != kind)
    finished.append((other, {"wall_seconds": 1.0 * run_seconds(other.options, _STEP)}))

    factors = measured_factors(finished, times)
    assert factors[kind] == pytest.approx(3.0)
    assert _run_key(other) not in factors  # one run is too few for a factor of its own
    assert factors[OVERALL] == pytest.approx(3.0)  # median of 3, 3, 3, 1

    plain_estimate = estimate_seconds(pretrainings, runs, times)
    scaled = estimate_seconds(pretrainings, runs, times, factors)
    for run in runs:
        assert scaled[run.run_id] == pytest.approx(plain_estimate[run.run_id] * 3.0)
    for spec in pretrainings:
        key = f"pretrain/{spec.run_id}"
        assert scaled[key] == pytest.approx(plain_estimate[key] * factors[OVERALL])


def test_no_measured_run_leaves_the_calibrated_estimate():
    from m2pt.experiments.estimate import estimate_seconds, measured_factors

    pretrainings, runs = _quick_runs()
    times = _step_times(runs)
    factors = measured_factors([(runs[0], {"wall_seconds": float("nan")}), (runs[1], {})], times)
    assert factors == {}
    assert measured_factors([(runs[0], {"wall_seconds": 10.0})], {}) == {}  # kind never calibrated
    assert estimate_seconds(pretrainings, runs, times, factors) == estimate_seconds(pretrainings, runs, times)


def test_finish_time_names_the_day_when_it_is_not_today():
    import time

    from m2pt.experiments.reproduce import finish_time

    noon = time.mktime((2026, 12, 5, 12, 0, 0, 0, 0, -1))
    assert finish_time(90 * 60, now=noon) == "13:30"
    assert finish_time(29 * 3600, now=noon) == time.strftime("%a %d %b", time.localtime(noon + 29 * 3600)) + " 17:00"
