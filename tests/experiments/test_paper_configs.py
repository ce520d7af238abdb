"""Every paper-scale configuration file runs through ``m2pt finetune/pretrain --config``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2pt.cli import build_parser, config_from_args, main
from m2pt.train.recipes import recipe

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.json"))


def _load(path: Path, *extra: str):
    task = json.loads(path.read_text())["task"]
    args = build_parser().parse_args([task, "--config", str(path), *extra])
    return config_from_args(args, task)


def test_there_are_configs_for_every_paper_task():
    names = {p.stem for p in CONFIGS}
    for prefix in ("in1k_mae", "in1k_scratch", "in1k_fixacc", "k400", "modelnet40", "audioset"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid_and_states_a_global_batch(path):
    config = _load(path)
    assert config.preset == "base"
    assert config.global_batch_size is not None
    assert ("baseline" in path.stem) == (not config.aux or config.pathway.scale_init == 0.0
                                         and not config.pathway.train_scale) or config.task == "pretrain"


def test_fix_acc_files_are_the_linear_probe_protocol():
    for path in CONFIGS:
        if "fixacc" in path.stem:
            config = _load(path)
            assert config.linear_probe and config.optimizer == "lars" and config.global_batch_size == 16384
            assert config.epochs == 90 and config.blr == 0.1 and config.weight_decay == 0.0
            assert not config.pathway.train_target and not config.pathway.train_aux


def test_set_overrides_the_file_and_reaches_pathway_fields(capsys):
    path = next(p for p in CONFIGS if p.stem == "in1k_mae_m2pt_point")
    config = _load(path, "--set", "epochs=2", "--set", "pathway.scale_init=0.001", "--set", 'aux=["a.pth"]',
                   "--scale-lr-mult", "2")
    assert (config.epochs, config.pathway.scale_init, config.aux, config.pathway.scale_lr_mult) == (
        2, 0.001, ["a.pth"], 2.0)
    assert main(["finetune", "--config", str(path), "--set", "epochs=2", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["epochs"] == 2 and printed["output"] == "runs/paper/in1k_mae_m2pt_point"


def test_bad_config_files_are_refused(tmp_path, capsys):
    path = next(p for p in CONFIGS if p.stem == "in1k_mae_baseline")
    assert main(["finetune", "--config", str(path), "--set", "no_such_option=1", "--print-config"]) == 2
    assert "unknown training option(s) ['no_such_option']" in capsys.readouterr().err
    pretrain_file = next(p for p in CONFIGS if p.stem == "pretrain_point_aux")
    assert main(["finetune", "--config", str(pretrain_file), "--print-config"]) == 2
    assert "m2pt pretrain --config" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["finetune", "--config", str(broken), "--print-config"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    broken.write_text("[1, 2]")
    assert main(["finetune", "--config", str(broken), "--print-config"]) == 2
    assert "must hold a JSON object" in capsys.readouterr().err
    assert main(["finetune", "--config", str(tmp_path / "missing.json"), "--print-config"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_files_match_their_recipes():
    """The files carry the recipe values (so the README table describes them too)."""
    for path in CONFIGS:
        stored = json.loads(path.read_text())
        if stored["task"] == "pretrain" or "scratch" in path.stem:
            continue
        name = "image-linprobe" if "fixacc" in path.stem else stored["modality"]
        for key, value in recipe(name).items():
            if key != "pathway":
                assert stored[key] == value, (path.stem, key)
