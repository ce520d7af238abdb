"""The converged and GPU profiles: arms, λ learning-rate sums, order, extra seeds, unchanged old plans."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from m2pt.experiments.budgets import get_profile
from m2pt.experiments.plan import (RunSpec, build_plan, check_lambda_lr_sums, extra_seed_runs, lambda_lr_sums_of,
                                   priority)

REPO = Path(__file__).resolve().parents[2]
MODALITIES = ("image", "video", "point", "audio")


def _cells(runs):
    return {(r.setting, r.modality, r.arm.name) for r in runs}


def test_converged_plan_has_the_arms_of_the_issue():
    pretrainings, runs = build_plan(get_profile("converged"))
    cells = _cells(runs)
    for target in MODALITIES:
        assert ("scratch", target, "baseline") in cells and ("scratch", target, "baseline-x2") in cells
        for aux in set(MODALITIES) - {target}:
            assert ("scratch", target, f"aux-{aux}") in cells
        control = "image" if target == "point" else "point"
        assert ("scratch", target, f"random-{control}") in cells
        assert ("scratch", target, f"permuted-{control}") in cells
    for arm in ("small-baseline", "small-aux-minilm", "small-random-minilm", "small-permuted-minilm"):
        assert ("scratch", "image", arm) in cells
    # From scratch, but for the fix-acc study (linear probe of the MAE-pretrained image target).
    assert {r.setting for r in runs if r.arm.group != "fixacc"} == {"scratch"} and {r.seed for r in runs} == {0, 1, 2}
    assert {r.setting for r in runs if r.arm.group == "fixacc"} == {"mae"}
    assert {p.source for p in pretrainings} == {f"mae:{m}" for m in MODALITIES} | {"mae-long:point"}
    permuted = next(r for r in runs if r.arm.name == "permuted-point")
    assert permuted.arm.aux == "permuted:mae:point" and permuted.arm.baseline == "baseline"
    audio = next(r for r in runs if r.modality == "audio")
    assert audio.options["data_options"]["augment"] == "realistic"


def test_every_lambda_of_the_converged_and_gpu_studies_sees_a_learning_rate_sum_of_at_least_one():
    for name in ("converged", "gpu"):
        profile = get_profile(name)
        _, runs = build_plan(profile)
        checked = [r for r in runs if r.arm.aux and r.arm.group in ("main", "minilm")]
        assert checked
        for run in checked:
            assert min(lambda_lr_sums_of(run)) >= 1.0, run.run_id
    # the quick budgets are far below: the reason for the converged profile
    _, quick = build_plan(get_profile("quick"))
    assert max(max(lambda_lr_sums_of(r)) for r in quick if r.arm.aux and r.arm.group == "main") < 0.1


def test_a_too_short_budget_is_refused_with_the_runs_named():
    profile = get_profile("converged")
    profile.finetune["image"]["epochs"] = 2
    with pytest.raises(ValueError, match=r"below 1 in \d+ run\(s\): scratch/image/aux-point/seed0 \(0\.\d+\)"):
        build_plan(profile)
    check_lambda_lr_sums(get_profile("quick"), build_plan(get_profile("quick"))[1])  # no minimum: no check


def test_plateau_and_budget_arms_change_only_their_budget():
    profile = get_profile("converged")
    _, runs = build_plan(profile)
    by_key = {(r.modality, r.arm.name, r.seed): r for r in runs}
    for target in MODALITIES:
        doubled, base = by_key[(target, "baseline-x2", 0)], by_key[(target, "baseline", 0)]
        assert doubled.options["epochs"] == 2 * base.options["epochs"]
        assert {k: v for k, v in doubled.options.items() if k != "epochs"} == \
               {k: v for k, v in base.options.items() if k != "epochs"}
    quick = get_profile("quick")
    for target, aux in (("image", "point"), ("audio", "point")):
        sizes = [by_key[(target, f"aux-{aux}-b{m}x", 1)].options["data_options"]["train_size"] for m in (1, 4, 16)]
        quick_size = quick.finetune[target]["data_options"]["train_size"]
        assert sizes == [quick_size, 4 * quick_size, 16 * quick_size]
        for m in (1, 4, 16):
            arm, control = by_key[(target, f"aux-{aux}-b{m}x", 1)], by_key[(target, f"random-{aux}-b{m}x", 1)]
            base = by_key[(target, f"baseline-b{m}x", 1)]
            assert arm.arm.baseline == base.arm.name and arm.options == base.options == control.options
            assert arm.options["epochs"] == quick.finetune[target]["epochs"]


def test_informative_order_finishes_the_key_comparisons_first():
    profile = get_profile("converged")
    _, runs = build_plan(profile)
    tiers = [priority(profile, r) for r in runs]
    assert tiers == sorted(tiers)
    # image and audio: baseline, point pathway, random and permuted controls, and whether those
    # targets were at their plateau (baseline trained twice as long), 3 seeds
    first = runs[:30]
    assert {(r.modality, r.arm.name) for r in first} == {
        (t, a) for t in ("image", "audio")
        for a in ("baseline", "aux-point", "random-point", "permuted-point", "baseline-x2")}
    assert [r.seed for r in first] == [0] * 10 + [1] * 10 + [2] * 10
    # then the gain versus budget
    assert {r.arm.group for r in runs[30:30 + 54]} == {"budget"}
    assert {r.modality for r in runs[30:30 + 54]} == {"image", "audio"}
    assert runs[-1].arm.group in ("plateau", "minilm")
    # the old profiles keep their seed-major order
    _, full = build_plan(get_profile("full"))
    assert [r.seed for r in full] == sorted(r.seed for r in full)


def _row(run: RunSpec, top1: float) -> dict:
    return {"run_id": run.run_id, "fingerprint": run.fingerprint(), "arm": run.arm.name, "group": run.arm.group,
            "baseline_arm": run.arm.baseline, "modality": run.modality, "setting": run.setting, "seed": run.seed,
            "preset": run.preset, "aux": run.arm.aux, "metrics": {"top1": top1}, "pathway_stats": {}}


def test_extra_seeds_go_to_uncertain_comparisons_and_their_baselines_only():
    profile = get_profile("converged")
    _, runs = build_plan(profile, only=["image"])
    scratch_image = [r for r in runs if r.arm.name in ("baseline", "aux-point", "random-point")]
    noisy = {0: 3.0, 1: -2.0, 2: 4.0}  # gain differences: 2·SE of the paired mean ≈ 3.7 points
    steady = {0: 0.5, 1: 0.6, 2: 0.4}  # 2·SE ≈ 0.12 points
    rows = []
    for run in scratch_image:
        offset = {"baseline": 0.0, "aux-point": noisy[run.seed], "random-point": steady[run.seed]}[run.arm.name]
        rows.append(_row(run, 80.0 + run.seed + offset))
    extra = extra_seed_runs(profile, runs, rows)
    assert {(r.arm.name, r.seed) for r in extra} == {(a, s) for a in ("aux-point", "baseline") for s in (3, 4)}
    assert all(r.options == next(p for p in runs if p.arm.name == r.arm.name).options for r in extra)
    # the same results give the same decision (a resumed study plans the same extra runs)
    assert [r.run_id for r in extra_seed_runs(profile, runs, rows)] == [r.run_id for r in extra]
    # rows of another plan (stale fingerprints) and unfinished seeds decide nothing
    stale = [{**row, "fingerprint": "0" * 12} for row in rows]
    assert extra_seed_runs(profile, runs, stale) == []
    assert extra_seed_runs(profile, runs, [r for r in rows if r["seed"] < 2]) == []
    assert extra_seed_runs(get_profile("full"), build_plan(get_profile("full"))[1], rows) == []


@pytest.mark.parametrize("name", ["quick", "full", "converged"])
def test_committed_results_keep_their_fingerprints(name):
    from m2pt.experiments.plan import current_rows

    rows = [json.loads(line) for line in (REPO / "results" / name / "results.jsonl").read_text().splitlines()
            if line.strip()]
    _, runs = build_plan(get_profile(name))
    assert rows and current_rows(runs, rows) == (rows, 0)  # extra seeds count, stale rows do not


def test_gpu_profile_runs_on_cuda_with_the_controls_and_minilm():
    profile = get_profile("gpu")
    pretrainings, runs = build_plan(profile)
    assert {r.options["device"] for r in runs} == {"cuda"} and all(r.options["amp"] for r in runs)
    assert {p.source for p in pretrainings} == {"mae:point"}
    assert {r.arm.name for r in runs} == {"baseline", "aux-point", "random-point", "permuted-point", "baseline-x2",
                                          "small-baseline", "small-aux-minilm", "small-random-minilm",
                                          "small-permuted-minilm"}
    assert runs[0].arm.name == "baseline" and runs[0].options["data_options"]["train_size"] == 50000


def test_profile_flag_on_the_command_line(capsys):
    from m2pt.cli import main

    assert main(["reproduce", "--profile", "converged", "--list", "--only", "aux-point"]) == 0
    out = capsys.readouterr().out
    assert "profile converged" in out and "Σ lr of λ" in out and "then seeds 3,4" in out
    assert "scratch  video  aux-point" in out and "1.13" in out  # λ's sum printed per arm
    assert "permuted-point" not in out and "aux-point-b4x" not in out  # --only matches arm names exactly
    assert main(["reproduce", "--quick", "--profile", "gpu", "--list"]) == 2
    assert "--quick and --profile gpu contradict" in capsys.readouterr().err
    assert main(["reproduce", "--estimate-only", "--no-estimate"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_tier_milestones_add_up_the_estimates_in_order():
    from m2pt.experiments.reproduce import tier_milestones

    profile = get_profile("converged")
    pretrainings, runs = build_plan(profile)
    estimates = {r.run_id: 60.0 for r in runs} | {f"pretrain/{p.run_id}": 120.0 for p in pretrainings}
    lines = tier_milestones(profile, pretrainings, runs, estimates, workers=2)
    assert lines[0] == "  pretrainings: 5 min 00 s"
    assert lines[1].startswith("  tier 0 (30 runs: image/baseline, image/aux-point,")
    assert lines[1].endswith("done after about 20 min 00 s")  # 5 min + 30 runs x 1 min / 2 workers
    assert len(runs) == 174 and lines[-1].endswith("done after about 1 h 32 min")  # 5 min + 174 x 1 min / 2


def test_extra_seeds_decided_by_finished_results_join_their_tier_on_resume(tmp_path):
    import torch

    from m2pt.experiments.reproduce import reproduce

    profile = get_profile("converged")
    _, runs = build_plan(profile, only=["image"])
    noisy = {0: 3.0, 1: -2.0, 2: 4.0}
    rows = [_row(r, 80.0 + r.seed + (noisy[r.seed] if r.arm.name == "aux-point" else 0.0))
            for r in runs if r.arm.name in ("baseline", "aux-point", "random-point", "permuted-point")]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    threads = torch.get_num_threads()
    try:
        reproduce("converged", tmp_path, only=["image"], estimate=False, estimate_only=True, workers=1, threads=1,
                  log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    plan = json.loads((tmp_path / "plan.json").read_text())
    planned = [(r["arm"], r["run_id"].rsplit("seed", 1)[1]) for r in plan["runs"]]
    tier0 = sum(1 for r in runs if priority(profile, r) == 0)
    assert sorted(planned[tier0:tier0 + 4]) == [("aux-point", "3"), ("aux-point", "4"), ("baseline", "3"),
                                                ("baseline", "4")]
    assert len(planned) == len(runs) + 4 and planned[tier0 + 4:] == [(r.arm.name, str(r.seed)) for r in runs[tier0:]]


@pytest.mark.parametrize("only, expected", [
    (["scratch/image/aux-point/seed3"], [("baseline", 3), ("aux-point", 3)]),
    (["scratch/image/baseline/seed4"], [("baseline", 4)]),
    (["scratch/image/random-point/seed3"], []),  # random-point's gain is certain enough: no extra seeds
])
def test_only_picks_single_extra_seed_runs_with_their_baseline(tmp_path, only, expected):
    import torch

    from m2pt.experiments.reproduce import reproduce

    profile = get_profile("converged")
    _, runs = build_plan(profile, only=["image"])
    noisy = {0: 3.0, 1: -2.0, 2: 4.0}
    rows = [_row(r, 80.0 + r.seed + (noisy[r.seed] if r.arm.name == "aux-point" else 0.0))
            for r in runs if r.arm.name in ("baseline", "aux-point", "random-point", "permuted-point")]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    threads = torch.get_num_threads()
    try:
        reproduce("converged", tmp_path, only=only, estimate=False, estimate_only=True, workers=1, threads=1,
                  log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [(r["arm"], int(r["run_id"].rsplit("seed", 1)[1])) for r in plan["runs"]] == expected
    # the extra run's auxiliary is pretrained first, though no planned run of the selection needs it
    assert [p["source"] for p in plan["pretrainings"]] == (["mae:point"] if ("aux-point", 3) in expected else [])


def test_rows_of_a_changed_budget_are_left_out_of_the_summary(tmp_path, capsys):
    from m2pt.cli import main
    from m2pt.experiments.plan import current_rows

    profile = get_profile("converged")
    _, runs = build_plan(profile)
    cell = {(r.modality, r.arm.name, r.seed): r for r in runs}
    current = [_row(cell[("image", arm, seed)], 85.0 + seed + (0.5 if arm == "aux-point" else 0.0))
               for arm in ("baseline", "aux-point") for seed in (0, 1, 2)]
    current.append(_row(dataclasses.replace(cell[("image", "baseline", 0)], seed=3), 86.0))  # an extra seed
    longer = get_profile("converged")
    longer.finetune["image"]["epochs"] = 14
    old = {(r.arm.name, r.seed): r for r in build_plan(longer, only=["image"])[1]}
    stale = [_row(old[("random-point", seed)], 10.0) for seed in (0, 1, 2)]
    gone = {**_row(cell[("audio", "baseline", 0)], 50.0), "arm": "no-longer-planned"}
    rows = [*stale, *current, gone]
    assert current_rows(runs, rows) == (current, 4)

    lines = [json.dumps({**row, "folder": str(tmp_path / "runs" / row["run_id"])}) + "\n" for row in rows]
    (tmp_path / "results.jsonl").write_text("".join(lines))
    assert main(["reproduce", "--profile", "converged", "--output", str(tmp_path), "--aggregate-only"]) == 0
    assert "4 row(s) of" in capsys.readouterr().out
    with open(tmp_path / "summary.csv", newline="") as file:
        table = {row["arm"]: row for row in csv.DictReader(file)}
    assert set(table) == {"baseline", "aux-point"}
    assert table["baseline"]["n"] == "4" and table["aux-point"]["n"] == "3"  # seeds 0-2 and the extra seed
    assert float(table["aux-point"]["gain"]) == pytest.approx(86.5 - 86.0)  # baseline: 85, 86, 87 and 86


def test_long_targets_warm_up_and_clip_but_the_budget_study_keeps_the_quick_options():
    _, runs = build_plan(get_profile("converged"))
    for run in runs:
        long = run.modality in ("audio", "video", "point") and run.arm.group != "budget"
        expected = (1.0, True) if long else (None, False)
        assert (run.options.get("clip_grad"), run.options["warmup_epochs"] == 5.0) == expected
    budget = {r.run_id: r for r in runs if r.arm.group == "budget" and r.modality == "audio" and r.seed == 0}
    quick_epochs = get_profile("quick").finetune["audio"]["epochs"]
    assert budget["scratch/audio/baseline-b4x/seed0"].options["epochs"] == quick_epochs
