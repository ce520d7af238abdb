"""Recipes state the global batch; ``--print-config``; the typed training config; generated pathway flags."""

from __future__ import annotations

import json

import pytest

from m2pt.cli import build_parser, config_from_args, main
from m2pt.models.presets import preset_kwargs
from m2pt.pathway import PathwayConfig
from m2pt.train.config import TrainConfig, TrainConfigError, resolve_for_world


def _printed(capsys, monkeypatch, world_size: int, *argv: str) -> dict:
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    assert main(["finetune", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_print_config_image_recipe_under_torchrun_of_8(capsys, monkeypatch, tmp_path):
    printed = _printed(capsys, monkeypatch, 8, "--recipe", "image", "--output", str(tmp_path / "run"))
    assert printed["world_size"] == 8
    assert printed["global_batch_size"] == 1024
    assert (printed["batch_size"], printed["accum_steps"]) == (128, 1)
    assert printed["lr"] == pytest.approx(2e-3)
    assert not (tmp_path / "run").exists(), "--print-config must not touch the run folder or the data"


def test_one_process_accumulates_to_the_same_global_batch_and_lr(capsys, monkeypatch):
    one = _printed(capsys, monkeypatch, 1, "--recipe", "image")
    assert (one["global_batch_size"], one["batch_size"], one["accum_steps"]) == (1024, 128, 8)
    assert one["lr"] == pytest.approx(2e-3)
    small = _printed(capsys, monkeypatch, 8, "--recipe", "image", "--batch-size", "48")
    assert (small["batch_size"], small["accum_steps"]) == (32, 4)  # the fewest micro-batches of at most 48


def test_paper_recipes_fixed(capsys, monkeypatch):
    audio = _printed(capsys, monkeypatch, 4, "--recipe", "audio")
    assert audio["lr"] == pytest.approx(1e-3 * 32 / 256)  # AudioMAE: blr 1e-3 scaled by the global batch
    assert (audio["batch_size"], audio["accum_steps"]) == (8, 1)
    point = _printed(capsys, monkeypatch, 1, "--recipe", "point")
    assert point["clip_grad"] == 10.0 and point["lr"] == 5e-4 and point["amp"] is False
    assert preset_kwargs("point", "base")["num_heads"] == 6
    assert preset_kwargs("image", "base")["num_heads"] == 12
    probe = _printed(capsys, monkeypatch, 32, "--recipe", "image-linprobe")
    assert (probe["global_batch_size"], probe["batch_size"], probe["lr"]) == (16384, 512, pytest.approx(6.4))
    assert probe["linear_probe"] and probe["optimizer"] == "lars" and probe["epochs"] == 90


def test_resolve_for_world():
    config = TrainConfig(global_batch_size=96, batch_size=32, blr=1e-3)
    assert resolve_for_world(config, 2).to_dict() == resolve_for_world(resolve_for_world(config, 2), 2).to_dict()
    resolved = resolve_for_world(config, 2)
    assert (resolved.batch_size, resolved.accum_steps, resolved.lr) == (24, 2, pytest.approx(96e-3 / 256))
    assert resolve_for_world(config.replace(accum_steps=6), 1).batch_size == 16  # accum_steps is a minimum
    plain = resolve_for_world(TrainConfig(batch_size=8, accum_steps=2, lr=1e-3), 4)
    assert (plain.global_batch_size, plain.batch_size, plain.accum_steps, plain.lr) == (64, 8, 2, 1e-3)
    with pytest.raises(TrainConfigError, match="does not split evenly over 5 processes"):
        resolve_for_world(config, 5)


def test_train_config_round_trip_with_typed_pathway(tmp_path):
    config = TrainConfig(aux=["a.pth"], pathway={"scale_init": 1e-4, "block_pairing": {0: 1, 1: 0},
                                                  "layers": "blocks\\.0\\..*", "split_under_autocast": True})
    assert isinstance(config.pathway, PathwayConfig) and config.pathway.block_pairing == {0: 1, 1: 0}
    text = json.dumps(config.to_dict())
    again = TrainConfig.from_dict(json.loads(text))
    assert again == config and again.to_dict() == config.to_dict()
    old_style = {**config.to_dict(), "pathway": {"train_aux": False}}  # a config.json from before: a partial dict
    assert TrainConfig.from_dict(old_style).pathway == PathwayConfig(train_aux=False)
    with pytest.raises(TrainConfigError, match="pathway: Unknown PathwayConfig fields"):
        TrainConfig(pathway={"no_such": 1})
    with pytest.raises(TrainConfigError, match="amp_dtype"):
        TrainConfig(amp_dtype="fp8")


def test_resume_reads_an_old_config_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    old = TrainConfig(output=str(run), aux=["x.pth"]).to_dict()
    for key in ("global_batch_size", "optimizer", "clip_grad", "linear_probe", "amp_dtype", "compile"):
        old.pop(key)  # fields that did not exist yet
    old["pathway"] = {"scale_init": 0.5}
    (run / "config.json").write_text(json.dumps({**old, "num_classes": 10, "world_size": 1}))
    assert main(["finetune", "--output", str(run), "--resume", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pathway"]["scale_init"] == 0.5 and printed["aux"] == ["x.pth"]


def test_every_pathway_field_has_a_generated_flag():
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["finetune"].format_help()
    for name in PathwayConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in help_text, name
    assert "Initial value of every λ" in help_text  # help comes from the PathwayConfig docstring
    argv = ["finetune", "--output", "x", "--aux", "a.pth", "--scale-init", "0.01", "--scale-shape", "channel",
            "--no-train-scale", "--aux-bias", "--block-pairing", '{"0": 1}', "--aux-norm", "match_target",
            "--scale-lr-mult", "10", "--layers", "attn.qkv", "mlp.fc1", "--split-under-autocast",
            "--block-pattern", "layers\\.(\\d+)\\.", "--freeze-aux", "--no-train-target"]
    config = config_from_args(parser.parse_args(argv), "finetune")
    assert config.pathway == PathwayConfig(
        scale_init=0.01, scale_shape="channel", train_scale=False, aux_bias=True, block_pairing={0: 1},
        aux_norm="match_target", scale_lr_mult=10.0, layers=("attn.qkv", "mlp.fc1"), split_under_autocast=True,
        block_pattern="layers\\.(\\d+)\\.", train_aux=False, train_target=False)
    unset = config_from_args(parser.parse_args(["finetune", "--output", "x"]), "finetune")
    assert unset.pathway == PathwayConfig()


def test_new_training_flags_reach_the_config():
    parser = build_parser()
    argv = ["finetune", "--output", "x", "--amp-dtype", "fp16", "--compile", "--clip-grad", "3",
            "--optimizer", "lars", "--linear-probe", "--global-batch-size", "64"]
    config = config_from_args(parser.parse_args(argv), "finetune")
    assert (config.amp_dtype, config.compile, config.clip_grad, config.optimizer, config.linear_probe,
            config.global_batch_size) == ("fp16", True, 3.0, "lars", True, 64)
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--output", "x", "--amp-dtype", "fp8"])


def test_an_explicit_blr_replaces_the_recipes_absolute_lr(capsys, monkeypatch):
    assert _printed(capsys, monkeypatch, 2, "--recipe", "cpu")["lr"] == 1e-3  # the cpu recipe's absolute lr
    printed = _printed(capsys, monkeypatch, 2, "--recipe", "cpu", "--blr", "1e-3")
    assert printed["lr"] == pytest.approx(1e-3 * 128 * 2 / 256)
    assert _printed(capsys, monkeypatch, 2, "--recipe", "cpu", "--blr", "1e-3", "--lr", "5e-4")["lr"] == 5e-4
