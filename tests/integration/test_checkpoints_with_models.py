"""Checkpoint layouts of the four codebases load into the real m2pt models, and exports round-trip."""

from __future__ import annotations

import json

import pytest
import torch

import m2pt
from m2pt.checkpoints import load_target_weights

from ..models.helpers import random_input, tiny_model

MODALITIES = ("image", "video", "point", "audio")


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random values in every saved tensor (fixed, non-persistent tables stay as built)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.5
                tensor.copy_(values.abs() + 0.5 if key.endswith("running_var") else values)
    return model


@pytest.mark.parametrize("modality", MODALITIES)
def test_save_model_and_load_model_round_trip(tmp_path, modality):
    model = randomize_(tiny_model(modality), seed=3).eval()
    m2pt.save_model(model, tmp_path / "export")
    restored = m2pt.load_model(tmp_path / "export").eval()
    assert type(restored) is type(model)
    x = random_input(model)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x), atol=0, rtol=0)


def test_load_model_refuses_weights_that_do_not_fit(tmp_path):
    m2pt.save_model(tiny_model("audio"), tmp_path / "export")
    config_path = tmp_path / "export" / "config.json"
    config = json.loads(config_path.read_text())
    config["model_args"]["num_classes"] = 7
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="(?s)do not fit.*head"):
        m2pt.load_model(tmp_path / "export")


def test_merged_pathway_model_exports_as_plain_model(tmp_path):
    model = m2pt.add_pathways(tiny_model("point"), tiny_model("video"))
    with pytest.raises(ValueError, match="merge_pathways"):
        m2pt.save_model(model, tmp_path / "unmerged")
    m2pt.save_model(m2pt.merge_pathways(model), tmp_path / "merged")
    m2pt.load_model(tmp_path / "merged")


def _source(modality: str) -> torch.nn.Module:
    return randomize_(tiny_model(modality), seed=11).eval()


def _assert_loaded(model: torch.nn.Module, source: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    expected = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith(skip) and value.is_floating_point():
            torch.testing.assert_close(value, expected[key], atol=0, rtol=0, msg=key)


def test_videomae_checkpoint_into_video_model():
    source = _source("video")
    state = {}
    for key, value in source.state_dict().items():
        if key.endswith("attn.qkv.bias"):
            q, _, v = value.chunk(3)
            state[key.replace("qkv.bias", "q_bias")] = q
            state[key.replace("qkv.bias", "v_bias")] = v
        else:
            state[key] = value
    model = tiny_model("video")
    report = load_target_weights(model, {"module": {"encoder." + k: v for k, v in state.items()}})
    assert report.source_format == "videomae" and not report.missing, report
    _assert_loaded(model, source, skip=tuple(f"blocks.{i}.attn.qkv.bias" for i in range(2)))
    for i in range(2):
        q, k, v = model.blocks[i].attn.qkv.bias.chunk(3)
        assert torch.count_nonzero(k) == 0
        torch.testing.assert_close(q, source.blocks[i].attn.qkv.bias.chunk(3)[0])


def test_pointmae_checkpoint_into_point_model():
    source = _source("point")
    renamed = {}
    for key, value in source.state_dict().items():
        if key.startswith("head."):
            continue
        key = key.replace("blocks.", "blocks.blocks.", 1) if key.startswith("blocks.") else key
        renamed["module.MAE_encoder." + key] = value
    renamed["module.MAE_decoder.blocks.blocks.0.attn.qkv.weight"] = torch.zeros(96, 32)
    model = tiny_model("point")
    report = load_target_weights(model, {"base_model": renamed, "epoch": 300})
    assert report.source_format == "pointmae", report
    assert all(k.startswith("head.") for k in report.missing), report
    _assert_loaded(model, source, skip=("head.",))
    aux = m2pt.load_auxiliary({"base_model": renamed, "epoch": 300})
    torch.testing.assert_close(aux.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    assert aux.blocks[1].attn.qkv.bias is None


def test_audiomae_checkpoint_into_audio_model():
    source = _source("audio")
    state = dict(source.state_dict())
    num_tokens = source.patch_embed.proj.weight.shape[0]
    state["pos_embed"] = torch.zeros(1, 1 + 8, num_tokens)  # AudioMAE stores its fixed table; m2pt recomputes it
    state["decoder_embed.weight"] = torch.zeros(16, 32)
    state["mask_token"] = torch.zeros(1, 1, 16)
    model = tiny_model("audio")
    report = load_target_weights(model, {"model": state})
    assert not report.missing, report
    _assert_loaded(model, source)
