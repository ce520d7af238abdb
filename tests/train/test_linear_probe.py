"""The paper's "fix acc": MAE's linear probe with pathways trains only λ and the classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from m2pt.checkpoints import load_model, save_model
from m2pt.io import load_tensor_file
from m2pt.models import create_model
from m2pt.train.finetuning import finetune
from m2pt.train.linear_probe import LinearProbeError, fold_probe_head, prepare_linear_probe

from .conftest import TINY_MODEL, tiny_config


def test_fix_acc_trains_only_the_scales_and_the_classifier(tmp_path, aux_file):
    torch.manual_seed(5)
    target = create_model("image", "tiny", num_classes=10, global_pool="token", **TINY_MODEL)
    init = save_model(target, tmp_path / "target.safetensors")
    config = tiny_config(tmp_path / "run", init=str(init), aux=[str(aux_file)], linear_probe=True, optimizer="lars",
                         lr=0.5, weight_decay=0.0, model_overrides={**TINY_MODEL, "global_pool": "token"},
                         pathway={"train_target": False, "train_aux": False})
    final = finetune(config, quiet=True)
    assert final["finished"] and final["merge_same_predictions"] == 1.0

    before, after = load_tensor_file(init), load_tensor_file(tmp_path / "run" / "pathways.safetensors")
    aux = load_tensor_file(aux_file)
    changed = set()
    for key, value in after.items():
        plain_key = key.replace(".parametrizations.weight.original", ".weight").replace(
            ".parametrizations.bias.original", ".bias")
        if ".scale" in key:
            assert value.abs().max() > 0, f"λ did not train: {key}"
            changed.add("scale")
        elif ".aux_weight" in key:
            aux_key = key.split(".parametrizations")[0] + ".weight"
            torch.testing.assert_close(value, aux[aux_key], rtol=0, atol=0, msg=f"W' moved: {key}")
        elif plain_key.startswith("head."):
            assert not torch.equal(value, before[plain_key]), "the classifier did not train"
            changed.add("head")
        else:
            torch.testing.assert_close(value, before[plain_key], rtol=0, atol=0, msg=f"{key} moved")
    assert changed == {"scale", "head"}
    merged = load_model(tmp_path / "run" / "model.safetensors")
    assert isinstance(merged.head, nn.Linear)  # the BatchNorm was folded into the classifier


def test_probe_head_folds_exactly_and_rejects_other_heads():
    torch.manual_seed(0)
    model = create_model("image", "tiny", num_classes=5, **TINY_MODEL)
    prepare_linear_probe(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.1.weight", "head.1.bias"}
    model.train()
    for _ in range(3):
        model(torch.randn(16, 1, 28, 28))  # BatchNorm statistics
    model.eval()
    x = torch.randn(4, 1, 28, 28)
    expected = model(x)
    fold_probe_head(model)
    assert isinstance(model.head, nn.Linear)
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    other = nn.Module()
    other.head = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(LinearProbeError, match="one nn.Linear"):
        prepare_linear_probe(other)
