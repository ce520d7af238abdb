"""The ``m2pt`` command end to end on tiny built-in data, and its errors on bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from m2pt.cli import main
from m2pt.io import load_tensor_file
from m2pt.pathway import PathwayConfig
from m2pt.checkpoints import load_model
from m2pt.train.run_dir import RunFolderError
from m2pt.train.state import load_training_state, save_training_state

TINY = ["--model-override", "embed_dim=32", "--model-override", "depth=2", "--model-override", "num_heads=2",
        "--data-option", "train_size=32", "--data-option", "test_size=16", "--batch-size", "8", "--epochs", "1",
        "--quiet"]


def test_finetune_info_merge_evaluate_end_to_end(tmp_path, aux_file, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--modality", "image", "--output", str(run), "--aux", str(aux_file),
                 "--scale-init", "0.01", "--layers", "attn.qkv", "mlp.fc2", *TINY]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["pathway"] == {**PathwayConfig().to_dict(), "layers": ["attn.qkv", "mlp.fc2"], "scale_init": 0.01}
    for name in ("final_metrics.json", "metrics.jsonl", "train.log", "model.safetensors", "pathways.safetensors",
                 "plots/loss.png", "plots/scales.png", "plots/accuracy.png"):
        assert (run / name).is_file(), name
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["pathway_layers"] == 4 and final["merge_same_predictions"] == 1.0
    assert final["merge_max_abs_diff"] < 1e-4

    capsys.readouterr()
    assert main(["info", str(run / "pathways.safetensors")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "pathway model" in info["format"] and info["pathway_layers"] == 4 and info["depth"] == 2

    merged = tmp_path / "merged.safetensors"
    assert main(["merge", str(run), str(merged)]) == 0
    plain = load_model(merged)  # strict=True into the vanilla timm ViT
    reference = load_tensor_file(run / "model.safetensors")
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=1e-6, rtol=0)

    capsys.readouterr()
    assert main(["evaluate", str(merged), "--data-option", "train_size=32", "--data-option", "test_size=16"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(final["top1"])


def test_pretrain_command_writes_an_auxiliary(tmp_path, capsys):
    assert main(["pretrain", "--modality", "image", "--output", str(tmp_path / "mae"), "--decoder-dim", "16",
                 "--decoder-depth", "1", *TINY]) == 0
    assert json.loads((tmp_path / "mae" / "config.json").read_text())["mask_ratio"] == 0.75
    capsys.readouterr()
    assert main(["info", str(tmp_path / "mae" / "encoder.safetensors")]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "m2pt plain model"


def test_finished_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    args = ["finetune", "--output", str(tmp_path / "run"), *TINY]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--data", "/no/such/dataset"], "does not exist"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--recipe", "nope"], "unknown recipe 'nope'"),
    (["--aux", "/no/such/aux.safetensors"], "auxiliary checkpoint(s) not found"),
])
def test_bad_input_is_a_clear_error_before_training(tmp_path, capsys, extra, message):
    assert main(["finetune", "--output", str(tmp_path / "run"), *TINY, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_unknown_modality_is_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--modality", "smell", "--output", str(tmp_path)])
    assert "invalid choice: 'smell'" in capsys.readouterr().err


def test_auxiliary_that_does_not_fit_surfaces_the_pathway_error(tmp_path, aux_file, capsys):
    wider = TINY[:1] + ["embed_dim=64"] + TINY[2:]
    assert main(["finetune", "--output", str(tmp_path / "run"), "--aux", str(aux_file), *wider]) == 2
    err = capsys.readouterr().err
    assert "PathwayError" in err and "shape mismatch" in err and "(192, 64)" in err


def test_output_below_a_file_is_refused_as_unwritable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["finetune", "--output", str(blocker / "run"), *TINY]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "checkpoint.pt"
    save_training_state(path, model, optimizer, epoch=1, batch_in_epoch=0, step=10)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):  # torch.save fails halfway
        save_training_state(path, model, optimizer, epoch=2, batch_in_epoch=0, step=20, extra={"bad": lambda: 0})
    assert load_training_state(path)["step"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    from m2pt.train.run_dir import prepare_run_folder

    with pytest.raises(RunFolderError, match="no checkpoint.pt"):
        prepare_run_folder(tmp_path / "empty", resume=True, overwrite=False)


def test_every_command_has_help_with_examples(capsys):
    for command in ("demo", "pretrain", "finetune", "merge", "evaluate", "info"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out
