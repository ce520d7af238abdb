"""Aggregation math on a hand-made results file: mean, std, gain, 2-SE test, tables."""

from __future__ import annotations

import json
import math

import pytest

from m2pt.experiments.aggregate import (csv_table, gain_matrix_markdown, markdown_table, mean_std, se_of_difference,
                                        summarize)
from m2pt.experiments.records import latest_rows, read_rows


def _row(arm, seed, top1, baseline="baseline", setting="scratch", modality="image"):
    return {"run_id": f"{setting}/{modality}/{arm}/seed{seed}", "arm": arm, "group": "main", "setting": setting,
            "modality": modality, "seed": seed, "preset": "tiny", "aux": None if baseline is None else "mae:point",
            "baseline_arm": baseline, "metrics": {"top1": top1}, "wall_seconds": 10.0,
            "pathway_stats": {} if baseline is None else {"abs_lambda_mean": 1e-3, "rel_delta_mean": 0.01}}


@pytest.fixture
def results_file(tmp_path):
    rows = [_row("baseline", s, v, baseline=None) for s, v in enumerate([80.0, 81.0, 82.0])]
    rows += [_row("aux-point", s, v) for s, v in enumerate([84.0, 85.0, 86.0])]
    rows += [_row("aux-audio", s, v) for s, v in enumerate([80.0, 83.0, 80.5])]
    rows += [_row("random-point", 0, 90.0)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn line')
    return path


def test_mean_std_and_se():
    assert mean_std([80.0, 81.0, 82.0]) == (81.0, 1.0)
    mean, std = mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)
    assert se_of_difference(1.0, 3, 1.0, 3) == pytest.approx(math.sqrt(2 / 3))
    assert math.isnan(se_of_difference(1.0, 1, 1.0, 3))
    assert math.isnan(se_of_difference(1.0, 2, 1.0, 3))  # a standard deviation of two runs decides nothing


def test_summaries_from_hand_made_jsonl(results_file):
    rows = list(latest_rows(read_rows(results_file)).values())
    assert len(rows) == 10  # the torn last line is ignored
    by_arm = {s.arm: s for s in summarize(rows)}
    aux = by_arm["aux-point"]
    assert (aux.n, aux.mean, aux.std) == (3, 85.0, 1.0)
    assert aux.baseline_mean == 81.0 and aux.gain == pytest.approx(4.0)
    assert aux.se_diff == pytest.approx(math.sqrt(2 / 3))
    assert aux.significant is True and aux.verdict == "yes"
    audio = by_arm["aux-audio"]  # mean 81.1667, std 1.6073: gain 0.17 < 2 SE
    assert audio.gain == pytest.approx(81.0 + 1 / 6 - 81.0)
    assert audio.significant is False and audio.verdict == "no"
    assert by_arm["random-point"].verdict == "n/a"  # one run: no SE
    # paired: aux-audio - baseline per seed = 0, 2, -1.5 -> mean 1/6, sd 1.7559, SE 1.0138
    assert audio.paired_n == 3 and audio.paired_gain == pytest.approx(1 / 6)
    assert audio.paired_se == pytest.approx(math.sqrt(((0 - 1 / 6) ** 2 + (2 - 1 / 6) ** 2 + (-1.5 - 1 / 6) ** 2) / 2 / 3))
    assert audio.paired_verdict == "no"
    assert aux.paired_se == 0.0 and aux.paired_verdict == "yes"  # +4 on every seed
    assert by_arm["baseline"].baseline_arm is None and math.isnan(by_arm["baseline"].gain)
    assert aux.abs_lambda_mean == pytest.approx(1e-3)


def test_both_tests_need_three_seeds():
    rows = [_row("baseline", s, v, baseline=None) for s, v in enumerate([86.0, 86.0])]  # the same accuracy twice
    rows += [_row("aux-point", s, v) for s, v in enumerate([83.83, 84.5])]
    aux = {s.arm: s for s in summarize(rows)}["aux-point"]
    assert aux.paired_n == 2 and aux.paired_gain == pytest.approx(-1.835)
    assert math.isnan(aux.paired_se) and aux.paired_verdict == "n/a"
    # s = 0 on one side and 0.47 on the other would make -1.83 "beyond 2 SE" (2·SE 0.67) on 2 seeds
    assert math.isnan(aux.se_diff) and aux.verdict == "n/a"
    rows += [_row("baseline", 2, 84.0, baseline=None), _row("aux-point", 2, 84.2)]
    aux = {s.arm: s for s in summarize(rows)}["aux-point"]
    assert aux.se_diff > 0 and aux.verdict in ("yes", "no") and aux.paired_verdict in ("yes", "no")


def test_gain_compares_the_seeds_both_arms_have():
    rows = [_row("baseline", s, v, baseline=None) for s, v in enumerate([70.0, 80.0, 90.0, 60.0, 100.0])]
    rows += [_row("aux-point", 0, 69.0)]  # a study in progress: only seed 0 of the arm
    rows += [_row("aux-audio", s, v) for s, v in enumerate([71.0, 81.0, 91.0])]  # extra seeds 3, 4 are the baseline's
    rows += [_row("aux-video", 7, 50.0)]  # no seed in common: all runs, unpaired
    by_arm = {s.arm: s for s in summarize(rows)}
    point = by_arm["aux-point"]
    assert (point.baseline_n, point.baseline_mean, point.gain, point.paired_n) == (1, 70.0, -1.0, 1)
    audio = by_arm["aux-audio"]
    assert (audio.baseline_n, audio.baseline_mean, audio.baseline_std) == (3, 80.0, 10.0)
    assert audio.gain == pytest.approx(1.0) and audio.se_diff == pytest.approx(math.sqrt(200 / 3))
    assert audio.paired_gain == pytest.approx(1.0) and audio.paired_se == 0.0
    assert by_arm["baseline"].n == 5 and by_arm["baseline"].mean == 80.0  # the baseline's own row keeps every seed
    video = by_arm["aux-video"]
    assert (video.baseline_n, video.gain, video.paired_n) == (5, -30.0, 0)
    table = markdown_table(summarize(rows))
    assert "| scratch | image | aux-point | 1 | 69.00 ± – | 70.00 ± – | -1.00 |" in table


def test_latest_row_replaces_an_older_one(results_file):
    with open(results_file, "a") as f:
        f.write("\n" + json.dumps(_row("random-point", 0, 70.0)) + "\n")
    rows = list(latest_rows(read_rows(results_file)).values())
    assert {s.arm: s.mean for s in summarize(rows)}["random-point"] == 70.0


def test_tables_show_the_numbers(results_file):
    summaries = summarize(list(latest_rows(read_rows(results_file)).values()))
    md = markdown_table(summaries)
    assert "| scratch | image | aux-point | 3 | 85.00 ± 1.00 | 81.00 ± 1.00 | +4.00 | 1.63 | yes | 0.00 | yes |" in md
    csv_text = csv_table(summaries)
    header, *lines = csv_text.strip().splitlines()
    assert "gain" in header.split(",") and len(lines) == 4
    assert any(line.startswith("main,scratch,image,aux-point,mae:point,tiny,3,85.0,1.0") for line in lines)


def test_gain_matrix_has_auxiliary_rows_and_target_columns(results_file):
    summaries = summarize(list(latest_rows(read_rows(results_file)).values()))
    md = gain_matrix_markdown(summaries)
    assert "| auxiliary | image |" in md and "| *baseline, top-1 % (mean ± std)* | 81.00 ± 1.00 |" in md
    assert "| point | **+4.00 [1.63]** |" in md  # beyond 2 SE: bold
    assert "| audio | +0.17 [" in md and "| random (point std) | +10.00 [–] |" in md  # seed 0 only: no SE
    assert "mae setting" not in md
