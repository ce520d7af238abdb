"""Exports that timm and transformers load without knowing m2pt."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from torch import nn

import m2pt
from m2pt.checkpoints import CheckpointError, load_model, save_model
from m2pt.models import create_model

TINY = dict(embed_dim=32, depth=2, num_heads=2)


def merged_image_model() -> nn.Module:
    torch.manual_seed(0)
    target = create_model("image", "tiny", num_classes=7, **TINY)
    aux = create_model("image", "tiny", num_classes=7, **TINY)
    model = m2pt.add_pathways(target, aux, scale_init=0.3)
    return m2pt.merge_pathways(model).eval()


def assert_same_model(rebuilt: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    state, expected_state = rebuilt.state_dict(), model.state_dict()
    assert sorted(state) == sorted(expected_state)
    assert all(torch.equal(state[k], expected_state[k]) for k in state)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model(x))


@pytest.mark.parametrize("target", ["folder", "file"])
def test_timm_rebuilds_merged_image_model_from_config_alone(tmp_path, target):
    model = merged_image_model()
    out = tmp_path / ("final" if target == "folder" else "vit.safetensors")
    weights = save_model(model, out)
    config = json.loads((out / "config.json" if target == "folder" else out.with_suffix(".json")).read_text())
    assert config["timm_architecture"] == config["timm"]["model_name"] and config["timm"]["pretrained"] is True

    rebuilt = timm.create_model(**config["timm"], pretrained_cfg_overlay=dict(file=str(weights)))
    assert type(rebuilt) is timm.models.vision_transformer.VisionTransformer
    assert_same_model(rebuilt, model, torch.randn(2, 1, 28, 28))
    assert tuple(rebuilt.pretrained_cfg["input_size"]) == (1, 28, 28) and rebuilt.num_classes == 7


def test_timm_factory_model_rebuilds_after_reset_classifier(tmp_path):
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, **TINY, num_classes=4).eval()
    model.reset_classifier(3)
    weights = save_model(model, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["timm"]["num_classes"] == 3 and config["timm"]["img_size"] in (32, [32, 32])
    x = torch.randn(2, 3, 32, 32)
    assert_same_model(timm.create_model(**config["timm"], pretrained_cfg_overlay=dict(file=str(weights))), model, x)
    assert_same_model(load_model(tmp_path / "export"), model, x)  # builder "timm" without explicit config


def hf_vit() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=16, patch_size=4, num_labels=3)
    return transformers.ViTForImageClassification(config).eval()


def test_hf_model_is_exported_with_save_pretrained(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = hf_vit()
    weights = save_model(model, tmp_path / "hf", extra={"note": "plain"})
    assert weights == tmp_path / "hf" / "model.safetensors"
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["config.json", "m2pt.json", "model.safetensors"]
    assert json.loads((tmp_path / "hf" / "m2pt.json").read_text())["extra"] == {"note": "plain"}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(pixel_values=x).logits
        for loaded in (transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "hf"),
                       load_model(tmp_path / "hf")):
            assert type(loaded) is type(model)
            torch.testing.assert_close(loaded.eval()(pixel_values=x).logits, expected)


def test_hf_model_to_a_file_name_is_refused_without_writing(tmp_path):
    with pytest.raises(CheckpointError, match="exported as a folder with save_pretrained"):
        save_model(hf_vit(), tmp_path / "vit.safetensors")
    assert list(tmp_path.iterdir()) == []
