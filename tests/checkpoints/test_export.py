"""save_model / load_model: safetensors + JSON config, loadable by plain timm."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn

from .checkpoint_layouts import HEADS, WIDTH, randomize_
from m2pt.checkpoints import load_auxiliary, load_model, read_export_config, save_model
from m2pt.io import save_safetensors

TIMM_ARGS = dict(img_size=32, patch_size=8, embed_dim=WIDTH, depth=2, num_heads=HEADS, num_classes=10)
ARCH = "vit_tiny_patch16_224"


def timm_vit(seed: int = 0) -> nn.Module:
    return randomize_(timm.create_model(ARCH, pretrained=False, **TIMM_ARGS), seed).eval()


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_merged_model_loads_into_plain_timm(tmp_path):
    import m2pt

    model = m2pt.add_pathways(timm_vit(seed=1), timm_vit(seed=2), scale_init=0.3).eval()
    with pytest.raises(ValueError, match="merge_pathways.*save_pathways"):
        save_model(model, tmp_path / "vit.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    model = m2pt.merge_pathways(model)

    weights = save_model(model, tmp_path / "vit.safetensors")
    assert weights == tmp_path / "vit.safetensors" and (tmp_path / "vit.json").is_file()
    assert sorted(load_file(str(weights))) == sorted(timm_vit().state_dict())

    # num_classes in the overlay too: otherwise timm drops a head whose size differs from the default cfg's.
    overlay = dict(file=str(weights), num_classes=TIMM_ARGS["num_classes"])
    plain = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=overlay, **TIMM_ARGS).eval()
    assert_same_state(plain, model)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), expected)


def test_timm_round_trip_through_directory(tmp_path):
    model = timm_vit(seed=2)
    weights = save_model(model, tmp_path / "export", config=TIMM_ARGS)
    assert weights == tmp_path / "export" / "model.safetensors"
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["builder"] == "timm" and config["timm_architecture"] == ARCH
    assert config["model_args"] == TIMM_ARGS
    assert config["summary"] == {"depth": 2, "embed_dim": WIDTH, "num_heads": HEADS,
                                 "num_parameters": sum(p.numel() for p in model.parameters())}
    for path in (tmp_path / "export", weights):
        assert_same_state(load_model(path), model)


def test_saved_file_is_an_auxiliary_checkpoint(tmp_path):
    model = timm_vit(seed=3)
    save_model(model, tmp_path / "aux.safetensors", config=TIMM_ARGS)
    aux = load_auxiliary(tmp_path / "aux.safetensors")
    assert aux.source_format == "m2pt" and aux.num_heads == HEADS
    assert torch.equal(aux.blocks[1].attn.qkv.weight, model.blocks[1].attn.qkv.weight)


def test_json_unfriendly_build_args(tmp_path):
    from m2pt.models import create_model

    model = create_model("image", "tiny", num_classes=3)
    model.m2pt_model_args["device"] = torch.device("cpu")
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_bad_export_paths_and_configs(tmp_path):
    model = timm_vit()
    with pytest.raises(ValueError, match=r"'\*.safetensors' or pass a directory"):
        save_model(model, tmp_path / "vit.pth")
    save_model(model, tmp_path / "vit.safetensors", config=TIMM_ARGS)

    (tmp_path / "vit.json").write_text("{not json")
    with pytest.raises(ValueError, match="vit.json is not valid JSON"):
        load_model(tmp_path / "vit.safetensors")
    (tmp_path / "vit.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not an m2pt model config"):
        load_model(tmp_path / "vit.safetensors")
    (tmp_path / "vit.json").unlink()
    # a lone weights file still rebuilds: save_model stores the config in its header too
    assert load_model(tmp_path / "vit.safetensors").state_dict().keys() == model.state_dict().keys()
    save_safetensors(model.state_dict(), tmp_path / "bare.safetensors")
    with pytest.raises(FileNotFoundError, match="No model config at .*bare.json"):
        load_model(tmp_path / "bare.safetensors")
    # a missing weights file is named as missing, not blamed on a config.json that happens to sit beside it
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3}))
    with pytest.raises(FileNotFoundError, match="no model at .*missing.safetensors: the file"):
        load_model(tmp_path / "missing.safetensors")


def test_model_without_build_recipe(tmp_path):
    save_model(nn.Linear(4, 2), tmp_path / "lin.safetensors")
    with pytest.raises(ValueError, match="records no way to rebuild the model.*torch.nn.modules.linear.Linear"):
        load_model(tmp_path / "lin.safetensors")
