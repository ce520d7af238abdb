"""``m2pt reproduce`` on the command line: --list, --only, --seeds."""

from __future__ import annotations

import argparse

import pytest

from m2pt.cli import main
from m2pt.experiments.command import parse_seeds


def test_list_prints_the_plan_without_running(capsys, tmp_path):
    assert main(["reproduce", "--list", "--quick", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "profile quick" in out and "fine-tuning run(s)" in out
    assert "scratch  image  baseline" in out and "small-aux-minilm" in out
    assert "pretrain mae:audio" in out
    assert not (tmp_path / "out").exists()


def test_list_with_only_and_seeds(capsys):
    assert main(["reproduce", "--list", "--only", "aux-point-reversed", "--seeds", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 fine-tuning" not in out  # 10 runs: the arm and its baseline, 5 seeds each
    assert "10 fine-tuning run(s)" in out and "0,1,2,3,4" in out
    assert "aux-point-reversed" in out and "mae      image  baseline" in out


def test_parse_seeds():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,9") == [4, 9]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("0")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("x")


def test_workers_and_threads_take_auto_or_a_positive_count():
    from m2pt.experiments.command import _count_or_auto

    assert _count_or_auto("auto") == 0 and _count_or_auto("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="'auto' or a positive integer"):
            _count_or_auto(bad)
