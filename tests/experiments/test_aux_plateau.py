"""The auxiliary's plateau check: its MAE pretrained twice as long, and the target's gain with it."""

from __future__ import annotations

import json
import math

from m2pt.experiments.aggregate import summarize
from m2pt.experiments.aux_plateau import aux_plateau_checks
from m2pt.experiments.budgets import get_profile
from m2pt.experiments.convergence import study_sections
from m2pt.experiments.plan import build_plan, priority
from m2pt.train.run_dir import FINAL


def test_converged_pretrains_the_point_mae_twice_as_long_for_the_lead_targets():
    profile = get_profile("converged")
    pretrainings, runs = build_plan(profile)
    by_source = {p.source: p.options for p in pretrainings}
    long, planned = by_source["mae-long:point"], by_source["mae:point"]
    assert long["epochs"] == 2 * planned["epochs"] == 40
    assert {k: v for k, v in long.items() if k != "epochs"} == {k: v for k, v in planned.items() if k != "epochs"}
    arms = [r for r in runs if r.arm.group == "auxplateau"]
    assert {(r.modality, r.arm.name, r.seed) for r in arms} == {
        (t, "aux-point-long", s) for t in ("image", "audio") for s in (0, 1, 2)}
    reference = {(r.modality, r.seed): r for r in runs if r.arm.name == "aux-point"}
    for run in arms:
        assert run.arm.aux == "mae-long:point" and run.arm.baseline == "baseline"
        assert run.options == reference[(run.modality, run.seed)].options
        assert priority(profile, run) == 3
    assert not any(p.source.startswith("mae-long") for p in build_plan(get_profile("full"))[0])


def _rows(gains: dict[str, list[float]]) -> list[dict]:
    return [{"run_id": f"scratch/image/{arm}/seed{seed}", "arm": arm, "group": "main", "setting": "scratch",
             "modality": "image", "seed": seed, "preset": "tiny", "aux": None if arm == "baseline" else arm,
             "baseline_arm": None if arm == "baseline" else "baseline", "metrics": {"top1": 80.0 + value},
             "pathway_stats": {}, "folder": f"/nonexistent/{arm}/{seed}"}
            for arm, values in gains.items() for seed, value in enumerate(values)]


def test_the_check_compares_the_two_gains_paired_by_seed():
    rows = _rows({"baseline": [0.0, 1.0, 2.0], "aux-point": [0.5, 1.0, 2.5], "aux-point-long": [0.7, 1.1, 2.8]})
    curves = {"mae-point": [(1.0, 0.05), (20.0, 0.0213)], "mae-long-point": [(1.0, 0.05), (40.0, 0.0190)]}
    (check,) = aux_plateau_checks(summarize(rows), rows, curves)
    assert (check.modality, check.aux, check.n) == ("image", "point", 3)
    assert math.isclose(check.gain, 1.0 / 3) and math.isclose(check.gain_long, 1.6 / 3)
    assert math.isclose(check.difference, 0.2)  # per seed +0.2, +0.1, +0.3
    assert math.isclose(check.se, 0.1 / math.sqrt(3))
    assert (check.loss, check.loss_long) == (0.0213, 0.0190) and check.verdict == "yes"
    moved = _rows({"baseline": [0.0, 1.0, 2.0], "aux-point": [0.5, 1.0, 2.5], "aux-point-long": [3.0, 4.1, 5.5]})
    assert aux_plateau_checks(summarize(moved), moved, {})[0].verdict == "no"
    two = [r for r in rows if r["seed"] < 2]  # too few pairs for a 2·SE: the difference alone decides
    (unpaired,) = aux_plateau_checks(summarize(two), two, {})
    assert unpaired.n == 2 and math.isclose(unpaired.difference, 0.15) and math.isnan(unpaired.se)
    assert unpaired.verdict == "yes (2 seeds, no 2·SE)"
    in_progress = [r for r in rows if r["arm"] != "aux-point-long" or r["seed"] == 1]  # seed 1 of the long arm
    (early,) = aux_plateau_checks(summarize(in_progress), in_progress, {})
    assert early.n == 1 and math.isclose(early.difference, 0.1)  # seed 1 against seed 1, not the mean of 3
    one = [r for r in rows if r["seed"] == 0]
    assert aux_plateau_checks(summarize(one), one, {})[0].verdict == "yes (1 seed, no 2·SE)"
    assert aux_plateau_checks(summarize(rows[:6]), rows[:6], curves) == []  # no long arm yet


def test_the_summary_has_the_section_with_the_pretraining_losses(tmp_path):
    for name, losses in {"mae-point": [0.05, 0.03, 0.0213], "mae-long-point": [0.05, 0.03, 0.02, 0.0190]}.items():
        folder = tmp_path / "pretrain" / name
        folder.mkdir(parents=True)
        folder.joinpath("metrics.jsonl").write_text(
            "".join(json.dumps({"epoch": i + 1, "train_loss": loss}) + "\n" for i, loss in enumerate(losses)))
        folder.joinpath(FINAL).write_text("{}")
    rows = _rows({"baseline": [0.0, 1.0, 2.0], "aux-point": [0.5, 1.0, 2.5], "aux-point-long": [0.7, 1.1, 2.8]})
    text = study_sections(summarize(rows), rows, tmp_path)
    assert "### Auxiliary plateau check: pathway from the MAE pretrained twice as long" in text
    assert "| scratch | image | point | 0.0213, 0.0190 | +0.33 | +0.53 | +0.20 | 0.12 | 3 | yes |" in text
    assert "| mae-long-point | 4 |" in text  # the longer pretraining's curve in the pretraining table
