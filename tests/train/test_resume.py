"""Resuming an interrupted run gives the same final weights as an uninterrupted one."""

from __future__ import annotations

import torch

from m2pt.io import load_tensor_file
from m2pt.train.finetuning import finetune
from m2pt.train.mae import pretrain
from m2pt.train.state import load_training_state

from .conftest import tiny_config


def _weights(folder, name="model.safetensors"):
    return load_tensor_file(folder / name)


def _assert_same(a, b):
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=f"differs at {key}")


def test_resume_mid_epoch_equals_uninterrupted_run_with_pathways(tmp_path, aux_file):
    # drop path and mixup consume the torch and NumPy RNGs, so their states must be restored too
    options = dict(aux=[str(aux_file)], drop_path=0.1, mixup=0.8, cutmix=1.0, label_smoothing=0.1)
    straight = finetune(tiny_config(tmp_path / "straight", **options), quiet=True)
    assert straight["finished"] and straight["pathway_layers"] == 8

    cut = tiny_config(tmp_path / "cut", interrupt_at_step=4, **options)  # epoch 1 has 6 steps
    stopped = finetune(cut, quiet=True)
    assert stopped == {"finished": False, "step": 4, "stop_reason": "interrupt_at_step"}
    state = load_training_state(tmp_path / "cut" / "checkpoint.pt")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 4, 4)
    assert not (tmp_path / "cut" / "final_metrics.json").exists()

    resumed = finetune(cut.replace(interrupt_at_step=None), resume=True, quiet=True)
    assert resumed["finished"]
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "cut"))
    _assert_same(_weights(tmp_path / "straight", "pathways.safetensors"), _weights(tmp_path / "cut", "pathways.safetensors"))
    assert resumed["top1"] == straight["top1"]
    steps = [r["step"] for r in map(__import__("json").loads, (tmp_path / "cut" / "metrics.jsonl").read_text().split("\n")[:-1])]
    assert steps == sorted(steps), "metrics.jsonl must not repeat steps after resume"
    log = (tmp_path / "cut" / "train.log").read_text()
    at_resume = log[log.index("resumed from"):].split("\n")[1]  # the λ the checkpoint holds, not the init's 0
    assert at_resume.startswith(tuple("0123456789")) and "|λ| at resume: mean " in at_resume
    assert "|λ| at resume: mean 0," not in at_resume


def test_mae_resume_at_epoch_boundary_equals_uninterrupted_run(tmp_path):
    options = dict(task="pretrain", mask_ratio=0.75, decoder_dim=16, decoder_depth=1, epochs=2)
    pretrain(tiny_config(tmp_path / "straight", **options), quiet=True)
    cut = tiny_config(tmp_path / "cut", interrupt_at_step=6, **options)
    assert not pretrain(cut, quiet=True)["finished"]
    pretrain(cut.replace(interrupt_at_step=None), resume=True, quiet=True)
    _assert_same(_weights(tmp_path / "straight", "encoder.safetensors"), _weights(tmp_path / "cut", "encoder.safetensors"))
