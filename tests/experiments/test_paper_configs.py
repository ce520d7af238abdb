"""Every paper-scale configuration file is a valid training configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2pt.experiments.paper_configs import load_config, main

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.json"))


def test_there_are_configs_for_every_paper_task():
    names = {p.stem for p in CONFIGS}
    for prefix in ("in1k_mae", "in1k_scratch", "in1k_fixacc", "k400", "modelnet40", "audioset"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid(path):
    config = load_config(path)
    assert config.preset == "base"
    assert ("baseline" in path.stem) == (not config.aux or config.pathway.get("scale_init") == 0.0) \
        or config.task == "pretrain"


def test_dry_run_and_overrides(capsys):
    assert main([str(CONFIGS[0]), "--set", "epochs=2", "--dry-run"]) == 0
    assert '"epochs": 2' in capsys.readouterr().out
    with pytest.raises(Exception):
        load_config(CONFIGS[0], [("no_such_option", 1)])
