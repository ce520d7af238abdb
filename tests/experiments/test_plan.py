"""Plan construction: arms per cell, baselines, seeds, --only, pretrainings, fingerprints."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from m2pt.experiments.budgets import get_profile
from m2pt.experiments.plan import build_plan


def _cells(runs):
    return {(r.setting, r.modality, r.arm.name) for r in runs}


def test_full_plan_has_every_arm_of_the_issue():
    pretrainings, runs = build_plan(get_profile("full"))
    cells = _cells(runs)
    for setting in ("scratch", "mae"):
        for target in ("image", "video", "point", "audio"):
            assert (setting, target, "baseline") in cells
            others = {"image", "video", "point", "audio"} - {target}
            for aux in others:
                assert (setting, target, f"aux-{aux}") in cells
            assert (setting, target, f"aux-{target}") not in cells
            assert any(arm.startswith("random-") for s, t, arm in cells if (s, t) == (setting, target))
            if setting == "scratch" or target == "image":
                assert (setting, target, "small-aux-minilm") in cells and (setting, target, "small-baseline") in cells
    assert ("scratch", "image", "small-random-minilm") in cells and ("mae", "image", "small-random-minilm") in cells
    for arm in ("aux-point-qkv", "aux-point-proj", "aux-point-fc1", "aux-point-fc2", "aux-point-init1e-6",
                "aux-point-init1e-4", "aux-point-init1e-2", "aux-point-fixed1e-2", "aux-point-reversed",
                "aux-point-short", "fixacc-baseline", "fixacc-aux-point"):
        assert ("mae", "image", arm) in cells
    for arm in ("aux-point-lr10", "aux-point-lr100", "aux-point-channel", "aux-point-match",
                "random-point-lr100"):
        assert ("scratch", "image", arm) in cells
    sources = {p.source for p in pretrainings}
    assert {"mae:image", "mae:video", "mae:point", "mae:audio", "mae-short:point"} <= sources
    assert "mae-small:image" in sources


def test_every_comparison_has_its_baseline_with_the_same_seeds_and_budget():
    _, runs = build_plan(get_profile("full"))
    by_key = {(r.setting, r.modality, r.arm.name, r.seed): r for r in runs}
    for run in runs:
        if run.arm.baseline is None:
            continue
        base = by_key[(run.setting, run.modality, run.arm.baseline, run.seed)]
        assert base.options == run.options, run.run_id  # same data, epochs, batch, lr
        assert base.preset == run.preset
    per_arm = Counter((r.setting, r.modality, r.arm.name) for r in runs)
    assert set(per_arm.values()) == {3}


def test_seeds_and_unique_run_ids():
    _, runs = build_plan(get_profile("quick"), seeds=[4, 7])
    assert {r.seed for r in runs} == {4, 7}
    assert len({r.run_id for r in runs}) == len(runs)
    assert runs[0].seed == 4 and runs[-1].seed == 7  # seed-major order
    with pytest.raises(ValueError):
        build_plan(get_profile("quick"), seeds=[])


def test_only_keeps_the_baselines_of_selected_arms():
    pretrainings, runs = build_plan(get_profile("full"), seeds=[0], only=["aux-point-lr100"])
    assert _cells(runs) == {("scratch", "image", "aux-point-lr100"), ("scratch", "image", "baseline")}
    assert [p.source for p in pretrainings] == ["mae:point"]
    _, audio = build_plan(get_profile("full"), seeds=[0], only=["audio"])
    assert {r.modality for r in audio} == {"audio"}
    _, minilm = build_plan(get_profile("full"), seeds=[0], only=["small-aux-minilm"])
    assert {r.arm.name for r in minilm} == {"small-aux-minilm", "small-baseline"}


def test_mae_setting_starts_from_the_targets_own_mae_checkpoint():
    _, runs = build_plan(get_profile("quick"), seeds=[0])
    for run in runs:
        if run.setting == "scratch":
            assert run.init_source is None
        else:
            assert run.init_source == (f"mae:{run.modality}" if run.preset == "tiny" else f"mae-small:{run.modality}")


def test_fingerprint_changes_with_the_options():
    _, runs = build_plan(get_profile("quick"), seeds=[0])
    run = runs[0]
    changed = dataclasses.replace(run, options={**run.options, "epochs": run.options["epochs"] + 1})
    assert changed.fingerprint() != run.fingerprint()
    assert dataclasses.replace(run).fingerprint() == run.fingerprint()
