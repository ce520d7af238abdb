"""Plateau check, pretraining losses, gain versus budget and the λ study on hand-made results."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from m2pt.experiments.aggregate import summarize
from m2pt.experiments.convergence import (budget_points, late_relative_drop, plateau_checks, pretrain_loss_curves,
                                          record_pretrain_curves, study_sections)
from m2pt.experiments.figures import (lambda_panels, plot_gain_vs_budget, plot_lambda_agreement, plot_lambda_layers,
                                      plot_pretrain_losses)
from m2pt.experiments.lambda_analysis import (control_of, lambda_summaries, sign_agreement_across_seeds,
                                              sign_agreement_between)
from m2pt.experiments.provenance import mixed_auxiliaries, pretrained_source, provenance_markdown
from m2pt.train.run_dir import FINAL


def _row(arm, seed, top1, baseline="baseline", group="main", modality="image", lambdas=None):
    layers = {name: {"lambda": value, "abs_lambda": abs(value), "rel_delta": abs(value) * 2}
              for name, value in (lambdas or {}).items()}
    return {"run_id": f"scratch/{modality}/{arm}/seed{seed}", "arm": arm, "group": group, "setting": "scratch",
            "modality": modality, "seed": seed, "preset": "tiny", "aux": None if baseline is None else "mae:point",
            "baseline_arm": baseline, "metrics": {"top1": top1}, "wall_seconds": 1.0,
            "pathway_stats": {"layers": layers} if layers else {}}


def test_plateau_reached_only_below_one_point_beyond_the_seed_noise():
    noise = (-4.0, 0.0, 4.0)
    rows = [_row("baseline", s, 80.0 + s, baseline=None) for s in range(3)]
    rows += [_row("baseline-x2", s, 80.5 + s, group="plateau") for s in range(3)]
    rows += [_row("baseline", s, 50.0 + s, baseline=None, modality="audio") for s in range(3)]
    rows += [_row("baseline-x2", s, 55.0 + s, group="plateau", modality="audio") for s in range(3)]
    rows += [_row("baseline", s, 60.0, baseline=None, modality="video") for s in range(3)]
    rows += [_row("baseline-x2", s, 60.5 + noise[s], group="plateau", modality="video") for s in range(3)]
    # a study in progress: three baseline seeds, one doubled run; the check compares seed 0 with seed 0
    rows += [_row("baseline", s, 70.0 + 10 * s, baseline=None, modality="point") for s in range(3)]
    rows += [_row("baseline-x2", 0, 70.4, group="plateau", modality="point")]
    for row in rows:
        if row["arm"] == "baseline-x2":
            row["aux"] = None
    checks = {c.modality: c for c in plateau_checks(summarize(rows))}
    assert checks["image"].gain == pytest.approx(0.5) and checks["image"].verdict == "yes"
    assert checks["audio"].gain == pytest.approx(5.0) and checks["audio"].verdict == "no"
    assert checks["video"].gain == pytest.approx(0.5) and checks["video"].verdict == "undecided"
    assert (checks["point"].baseline, checks["point"].gain) == pytest.approx((70.0, 0.4))
    assert checks["point"].verdict == "yes (1 seed, no 2·SE)"
    for row in rows:
        if row["modality"] == "audio":
            row["metrics"]["train_loss"] = 0.6 + 0.01 * row["seed"] if row["arm"] == "baseline" else 0.5
    audio = {c.modality: c for c in plateau_checks(summarize(rows), rows)}["audio"]
    assert (audio.baseline_train_loss, audio.doubled_train_loss) == pytest.approx((0.61, 0.5))
    text = study_sections(summarize(rows), rows)
    assert "| scratch | image | 81.00 | 81.50 | +0.50 | 0.00 | 3 | yes | – |" in text
    assert "| scratch | audio | 51.00 | 56.00 | +5.00 | 0.00 | 3 | no | 0.610 → 0.500 |" in text
    assert "| scratch | video | 60.00 | 60.50 | +0.50 | 4.62 | 3 | undecided | – |" in text


def test_gain_versus_budget_points_and_plot(tmp_path):
    rows = []
    for m, gain in ((1, 0.0), (4, 1.0), (16, 3.0)):
        rows += [_row(f"baseline-b{m}x", s, 60.0 + m + s, baseline=None, group="budget") for s in range(3)]
        rows += [_row(f"aux-point-b{m}x", s, 60.0 + m + s + gain + 0.1 * s, baseline=f"baseline-b{m}x",
                      group="budget") for s in range(3)]
        rows += [_row(f"random-point-b{m}x", s, 60.0 + m + s, baseline=f"baseline-b{m}x", group="budget")
                 for s in range(3)]
    # the converged recipe's arms (group main) end each line; an arm outside the budget study does not
    rows += [_row("baseline", s, 85.0 + s, baseline=None) for s in range(3)]
    rows += [_row("aux-point", s, 85.5 + s, baseline="baseline") for s in range(3)]
    rows += [_row("permuted-point", s, 86.0 + s, baseline="baseline") for s in range(3)]
    points = budget_points(summarize(rows))
    pathway = [p for p in points if p.arm == "aux-point"]
    assert [p.multiplier for p in pathway] == [1, 4, 16, None]
    assert [p.budget for p in pathway] == ["1x", "4x", "16x", "converged"]
    assert [p.gain for p in pathway] == pytest.approx([0.1, 1.1, 3.1, 0.5])
    assert [p.baseline for p in pathway] == pytest.approx([62.0, 65.0, 77.0, 86.0])
    assert all(p.gain == pytest.approx(0.0) for p in points if p.arm == "random-point")
    assert [p.multiplier for p in points if p.arm == "random-point"] == [1, 4, 16]
    assert not any(p.arm == "permuted-point" for p in points)
    text = study_sections(summarize(rows), rows)
    assert "| scratch | image | aux-point | 16x | 77.00 | +3.10 | 0.12 |" in text
    assert "| scratch | image | aux-point | converged | 86.00 | +0.50 | 0.00 |" in text
    path = plot_gain_vs_budget(summarize(rows), tmp_path / "gain_vs_budget.png")
    assert path is not None and path.stat().st_size > 1000
    assert plot_gain_vs_budget(summarize(rows[:3]), tmp_path / "none.png") is None


def test_sign_agreement_across_seeds_and_with_controls():
    by_seed = {0: {"a": 1.0, "b": 1.0}, 1: {"a": 2.0, "b": -1.0}, 2: {"a": 0.5, "b": 1.0}}
    agreement = sign_agreement_across_seeds(by_seed)
    assert agreement == {"a": 1.0, "b": pytest.approx(1 / 3)}
    control = {0: {"a": -1.0, "b": 1.0}, 1: {"a": 1.0, "b": -3.0}, 3: {"a": 1.0, "b": 1.0}}
    assert sign_agreement_between(by_seed, control) == {"a": 0.5, "b": 1.0}  # seeds 0 and 1 only
    assert math.isnan(sign_agreement_across_seeds({0: {"a": 1.0}})["a"])
    assert control_of("random-point") == ("random", "aux-point")
    assert control_of("permuted-image") == ("permuted", "aux-image")
    assert control_of("small-permuted-minilm") == ("permuted", "small-aux-minilm")
    assert control_of("aux-point") is None
    assert control_of("fixacc-random-point") == ("random", "fixacc-aux-point")
    assert control_of("random-point-b4x") == ("random", "aux-point-b4x")
    assert control_of("baseline-x2") is None and control_of("aux-random-thing") is None


def test_lambda_summaries_from_rows_and_figure(tmp_path):
    rows = [_row("baseline", s, 80.0, baseline=None) for s in range(3)]
    rows += [_row("aux-point", s, 81.0, lambdas={"blocks.0.attn.qkv": 1e-3, "blocks.1.attn.qkv": (-1) ** s * 1e-3})
             for s in range(3)]
    rows += [_row("permuted-point", s, 80.0, lambdas={"blocks.0.attn.qkv": -1e-3, "blocks.1.attn.qkv": 1e-3})
             for s in range(3)]
    summaries = {s.arm: s for s in lambda_summaries(rows)}
    assert set(summaries) == {"aux-point", "permuted-point"}
    pathway = summaries["aux-point"]
    assert pathway.across_seeds == {"blocks.0.attn.qkv": 1.0, "blocks.1.attn.qkv": pytest.approx(1 / 3)}
    assert pathway.vs_controls["permuted-point"] == {"blocks.0.attn.qkv": 0.0,
                                                     "blocks.1.attn.qkv": pytest.approx(2 / 3)}
    assert pathway.rel_delta == pytest.approx({"blocks.0.attn.qkv": 2e-3, "blocks.1.attn.qkv": 2e-3})
    text = study_sections(summarize(rows), rows)
    assert "| scratch | image | aux-point | 3 | 0.67; 0.33–1.00 | permuted-point: 0.33 | 0.002; 0.002 |" in text
    path = plot_lambda_agreement(rows, tmp_path / "lambda_agreement.png")
    assert path is not None and path.stat().st_size > 1000


def test_pretraining_loss_curves_and_their_late_drop(tmp_path):
    folder = tmp_path / "pretrain" / "mae-point"
    folder.mkdir(parents=True)
    records = [{"step": 1, "loss": 9.0}] + [{"epoch": e, "train_loss": loss}
                                             for e, loss in enumerate([1.0, 0.6, 0.5, 0.45, 0.44], start=1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"torn')
    assert pretrain_loss_curves(tmp_path) == {}  # still pretraining
    (folder / FINAL).write_text("{}")
    curves = pretrain_loss_curves(tmp_path)
    assert curves == {"mae-point": [(1.0, 1.0), (2.0, 0.6), (3.0, 0.5), (4.0, 0.45), (5.0, 0.44)]}
    assert late_relative_drop(curves["mae-point"]) == pytest.approx(0.12)
    assert math.isnan(late_relative_drop([(1.0, 1.0)]))
    text = study_sections([], [], tmp_path)
    assert "| mae-point | 5 | 1.0000 | 0.4400 | 12.0 % |" in text
    assert plot_pretrain_losses(curves, tmp_path / "loss.png").stat().st_size > 1000
    assert plot_pretrain_losses(pretrain_loss_curves(tmp_path / "missing"), tmp_path / "none.png") is None


def test_pretraining_curves_outlive_their_folders(tmp_path):
    folder = tmp_path / "pretrain" / "mae-point"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 1 / e}) + "\n"
                                                  for e in (1, 2, 4)))
    (folder / "m2pt_fingerprint.txt").write_text("abc123")
    (folder / FINAL).write_text("{}")
    assert record_pretrain_curves(tmp_path / "empty") is None
    path = record_pretrain_curves(tmp_path)
    assert json.loads(path.read_text()) == {"mae-point": {"fingerprint": "abc123",
                                                          "curve": [[1.0, 1.0], [2.0, 0.5], [4.0, 0.25]]}}
    shutil.rmtree(tmp_path / "pretrain")  # the study moved to a machine without the pretraining folders
    assert pretrain_loss_curves(tmp_path) == {"mae-point": [(1.0, 1.0), (2.0, 0.5), (4.0, 0.25)]}
    assert "| mae-point | 4 | 1.0000 | 0.2500 | 50.0 % |" in study_sections([], [], tmp_path)

    redone = tmp_path / "pretrain" / "mae-point"  # redone on the new machine: the record stands until it ends
    redone.mkdir(parents=True)
    (redone / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 0.75}) + "\n")
    record_pretrain_curves(tmp_path)
    assert pretrain_loss_curves(tmp_path) == {"mae-point": [(1.0, 1.0), (2.0, 0.5), (4.0, 0.25)]}
    (redone / FINAL).write_text("{}")  # then the finished folder wins over the record, and updates it
    assert pretrain_loss_curves(tmp_path) == {"mae-point": [(1.0, 0.75)]}
    record_pretrain_curves(tmp_path)
    assert json.loads(path.read_text())["mae-point"] == {"fingerprint": None, "curve": [[1.0, 0.75]]}

    path.write_text('{"mae-point": ')
    with pytest.raises(ValueError, match="pretrain_curves.json is not valid JSON.*delete it"):
        pretrain_loss_curves(tmp_path)


def test_targets_whose_runs_used_different_files_of_one_auxiliary_are_listed():
    rows = [_row("baseline", s, 80.0, baseline=None) for s in range(3)]
    rows += [{**_row("aux-point", s, 81.0), "aux": "mae:point", "pretrained_sha256": digest}
             for s, digest in ((0, None), (1, "ab12"), (2, "ab12"))]
    rows += [{**_row("permuted-point", s, 80.5), "aux": "permuted:mae:point", "pretrained_sha256": "ab12"}
             for s in range(3)]
    rows += [{**_row("aux-point", s, 82.0, modality="audio"), "aux": "mae:point", "pretrained_sha256": "ab12"}
             for s in range(2)]
    assert pretrained_source("random:mae:point") == "mae:point" and pretrained_source("minilm") == "minilm"
    assert mixed_auxiliaries(rows) == {("scratch", "image", "mae:point"): {
        "not recorded": {"aux-point": [0]}, "ab12": {"aux-point": [1, 2], "permuted-point": [0, 1, 2]}}}
    assert ("| scratch | image | mae:point | not recorded: aux-point (0); ab12: aux-point (1, 2), "
            "permuted-point (0, 1, 2) |") in study_sections(summarize(rows), rows)
    assert provenance_markdown(rows[:3] + rows[4:]) == ""


def test_lambda_panels_take_the_lowest_seed_that_kept_its_history(tmp_path):
    def with_history(row):
        return {**row, "history": {"lambda": {"steps": [0, 10], "layers": {"blocks.0.attn.qkv": [0.0, 0.1]}}}}

    rows = [_row("aux-point", 0, 81.0), with_history(_row("aux-point", 1, 81.0)),  # seed 0 came without it
            with_history(_row("aux-point", 2, 81.0)), with_history(_row("random-point", 0, 80.0)),
            with_history(_row("aux-point", 0, 85.0, modality="audio")), _row("baseline", 0, 80.0, baseline=None)]
    panels = [(r["modality"], r["arm"], r["seed"]) for r, _ in lambda_panels(rows)]
    assert panels == [("image", "aux-point", 1), ("image", "random-point", 0), ("audio", "aux-point", 0)]
    assert lambda_panels(rows)[0][1] == [(0, {"blocks.0.attn.qkv": 0.0}), (10, {"blocks.0.attn.qkv": 0.1})]
    assert [(r["arm"], r["seed"]) for r, _ in lambda_panels(rows, seed=2)] == [("aux-point", 2)]
    assert plot_lambda_layers(rows, "scratch", "main", tmp_path / "layers.png").stat().st_size > 1000
    assert plot_lambda_layers(rows[:1], "scratch", "main", tmp_path / "none.png") is None
