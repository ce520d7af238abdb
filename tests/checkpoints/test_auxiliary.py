"""load_auxiliary on every layout: detection, exact weights, and the errors of bad input."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from .checkpoint_layouts import (
    DEPTH, HIDDEN, WIDTH, bert_state_dict, expected_bert_linears, expected_linears, mae_checkpoint,
    pointmae_checkpoint, save, small_vit, videomae_state_dict,
)
from m2pt.checkpoints import AuxiliaryModel, CheckpointError, convert_checkpoint, load_auxiliary


def assert_exact(aux: AuxiliaryModel, expected: dict[str, torch.Tensor]) -> None:
    state = aux.state_dict()
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def layout_cases():
    """(name, checkpoint object, flat-savable, expected format, expected linears)."""
    vit_sd = dict(small_vit(seed=5).state_dict())
    mae = mae_checkpoint()
    audio = mae_checkpoint(in_chans=1, img_size=(32, 16))
    video_ft = videomae_state_dict(prefix="backbone.")
    video_pre = videomae_state_dict(prefix="encoder.", pretrain=True)
    video_compiled = videomae_state_dict(prefix="_orig_mod.")
    point_pre = pointmae_checkpoint(pretrain=True)
    point_ft = pointmae_checkpoint(pretrain=False)
    bert = bert_state_dict("bert.")
    bert_bare = bert_state_dict("")
    return [
        ("timm", vit_sd, "timm", expected_linears(vit_sd, "blocks.")),
        ("mae", mae, "mae", expected_linears(mae["model"], "blocks.")),
        ("audiomae", audio, "audiomae", expected_linears(audio["model"], "blocks.")),
        ("videomae-finetune", {"module": video_ft}, "videomae", expected_linears(video_ft, "backbone.blocks.")),
        ("videomae-pretrain", {"model": video_pre}, "videomae", expected_linears(video_pre, "encoder.blocks.")),
        ("videomae-compiled", video_compiled, "videomae", expected_linears(video_compiled, "_orig_mod.blocks.")),
        ("pointmae-pretrain", point_pre, "pointmae",
         expected_linears(point_pre["base_model"], "module.MAE_encoder.blocks.blocks.")),
        ("pointmae-finetune", point_ft, "pointmae", expected_linears(point_ft["base_model"], "module.blocks.blocks.")),
        ("bert", bert, "bert", expected_bert_linears(bert, "bert.")),
        ("bert-bare", bert_bare, "bert", expected_bert_linears(bert_bare, "")),
    ]


CASES = layout_cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_round_trip_every_layout(case, suffix, tmp_path):
    name, checkpoint, expected_format, expected = case
    if suffix == ".safetensors":
        # safetensors holds one flat dict: the wrapper's inner state dict.
        checkpoint = next((checkpoint[k] for k in ("model", "module", "base_model") if k in checkpoint), checkpoint)
    path = tmp_path / f"{name}{suffix}"
    save(checkpoint, path)

    aux = load_auxiliary(path)

    assert aux.source_format == expected_format
    assert (aux.depth, aux.embed_dim, aux.mlp_hidden_dim) == (DEPTH, WIDTH, HIDDEN)
    assert_exact(aux, expected)
    assert not any(p.requires_grad for p in aux.parameters())


def test_videomae_bias_fold_has_zero_key_part():
    source = videomae_state_dict()
    aux = load_auxiliary(source)
    bias = aux.blocks[1].attn.qkv.bias
    assert torch.equal(bias[:WIDTH], source["blocks.1.attn.q_bias"])
    assert torch.equal(bias[WIDTH:2 * WIDTH], torch.zeros(WIDTH))
    assert torch.equal(bias[2 * WIDTH:], source["blocks.1.attn.v_bias"])


def test_pointmae_qkv_has_no_bias_and_drops_decoder():
    checkpoint = pointmae_checkpoint(pretrain=True)
    aux = load_auxiliary(checkpoint)
    assert aux.blocks[0].attn.qkv.bias is None
    assert aux.blocks[0].attn.proj.bias is not None
    assert "blocks.0.attn.qkv.bias" not in aux.state_dict()
    converted = convert_checkpoint(checkpoint)
    assert converted.prefix == "module.MAE_encoder."
    assert "encoder.first_conv.0.weight" in converted.state_dict  # the tokenizer keeps its `encoder.` name
    assert "module.MAE_decoder.blocks.blocks.0.attn.qkv.weight" in converted.dropped
    assert "module.mask_token" in converted.dropped


def test_mae_decoder_keys_dropped():
    converted = convert_checkpoint(mae_checkpoint())
    assert "mask_token" in converted.dropped and "decoder_blocks.0.attn.qkv.weight" in converted.dropped
    assert not any(k.startswith("decoder") or k == "mask_token" for k in converted.state_dict)
    assert "patch_embed.proj.weight" in converted.state_dict


def test_pairs_by_name_with_a_timm_target():
    aux = load_auxiliary(mae_checkpoint())
    target = small_vit(seed=9)
    target_linears = {f"{name}.weight" for name, m in target.named_modules() if isinstance(m, torch.nn.Linear)
                      and name.startswith("blocks.")}
    assert target_linears == {k for k in aux.state_dict() if k.endswith(".weight")}
    for key in target_linears:
        assert aux.state_dict()[key].shape == target.state_dict()[key].shape


def test_state_dict_input_is_copied():
    source = dict(small_vit().state_dict())
    aux = load_auxiliary(source)
    aux.blocks[0].attn.qkv.weight.data.zero_()
    assert source["blocks.0.attn.qkv.weight"].abs().sum() > 0


def test_module_input():
    vit = small_vit(seed=6)
    aux = load_auxiliary(vit)
    assert_exact(aux, expected_linears(dict(vit.state_dict()), "blocks."))


def test_bert_config_gives_heads_and_is_checked(tmp_path):
    save(bert_state_dict(), tmp_path / "pytorch_model.bin")
    config = {"num_attention_heads": 4, "hidden_size": WIDTH, "num_hidden_layers": DEPTH, "intermediate_size": HIDDEN}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_auxiliary(tmp_path / "pytorch_model.bin").num_heads == 4
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 12}))
    with pytest.raises(ValueError, match="num_hidden_layers=12.*depth 2"):
        load_auxiliary(tmp_path / "pytorch_model.bin")


def test_heads_unknown_without_config_and_explicit_override():
    assert load_auxiliary(bert_state_dict()).num_heads is None
    assert load_auxiliary(bert_state_dict(), num_heads=2).num_heads == 2
    with pytest.raises(ValueError, match="does not divide the width 32"):
        load_auxiliary(bert_state_dict(), num_heads=5)


def test_forced_format():
    vit_sd = dict(small_vit().state_dict())
    assert load_auxiliary(vit_sd, format="videomae").source_format == "videomae"
    with pytest.raises(ValueError, match="'bert' layout was requested.*looks like the 'timm' layout"):
        load_auxiliary(vit_sd, format="bert")
    with pytest.raises(ValueError, match="Unknown checkpoint format 'vit'"):
        load_auxiliary(vit_sd, format="vit")


def test_pointmae_at_width_768_has_6_heads():
    width = 768
    state_dict = {}
    for name, shape in (("attn.qkv", (3 * width, width)), ("attn.proj", (width, width)),
                        ("mlp.fc1", (4 * width, width)), ("mlp.fc2", (width, 4 * width))):
        state_dict[f"module.MAE_encoder.blocks.blocks.0.{name}.weight"] = torch.zeros(shape)
    aux = load_auxiliary({"base_model": state_dict})
    assert (aux.source_format, aux.embed_dim, aux.num_heads) == ("pointmae", 768, 6)
    assert load_auxiliary(pointmae_checkpoint()).num_heads is None  # width 32: unknown


def test_repr_is_readable():
    text = repr(load_auxiliary(pointmae_checkpoint()))
    assert "source_format='pointmae'" in text and "depth=2" in text and "embed_dim=32" in text
    assert "no_bias=['attn.qkv']" in text
    assert "attn.qkv 32->96" in text


# ---- bad input -----------------------------------------------------------------------------

def test_unknown_layout_lists_keys_and_layouts():
    with pytest.raises(CheckpointError) as info:  # a ValueError
        load_auxiliary({"features.0.weight": torch.zeros(3), "classifier.weight": torch.zeros(2)})
    message = str(info.value)
    assert "features.0.weight" in message and "unknown checkpoint layout" in message
    for layout in ("timm", "pointmae", "bert", "videomae", "m2pt"):
        assert layout in message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_auxiliary(tmp_path / "nothing.pth")


def test_pickle_refused_by_weights_only(tmp_path):
    checkpoint = mae_checkpoint()
    checkpoint["args"] = argparse.Namespace(lr=1e-3)  # what MAE's training script also saves
    torch.save(checkpoint, tmp_path / "checkpoint-799.pth")
    with pytest.raises(ValueError) as info:
        load_auxiliary(tmp_path / "checkpoint-799.pth")
    message = str(info.value)
    assert "weights_only" in message and "Namespace" in message
    assert "state_dict" in message and "safetensors" in message


def test_non_contiguous_blocks():
    state_dict = dict(small_vit(depth=3).state_dict())
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("blocks.1.")}
    with pytest.raises(ValueError, match=r"found \[0, 2\].*block\(s\) \[1\].*depth 3 from the highest index, width 32"):
        load_auxiliary(state_dict)


def test_missing_linear_names_the_key():
    state_dict = dict(small_vit().state_dict())
    del state_dict["blocks.1.mlp.fc2.weight"]
    with pytest.raises(ValueError, match=r"Block 1 \(of depth 2, width 32\).*'blocks.1.mlp.fc2.weight'"):
        load_auxiliary(state_dict)


def test_missing_linear_names_the_source_key():
    state_dict = pointmae_checkpoint()
    del state_dict["base_model"]["module.MAE_encoder.blocks.blocks.0.attn.proj.weight"]
    with pytest.raises(ValueError, match="'module.MAE_encoder.blocks.blocks.0.attn.proj.weight' is missing"):
        load_auxiliary(state_dict)
    bert = bert_state_dict()
    del bert["bert.encoder.layer.1.intermediate.dense.weight"]
    with pytest.raises(ValueError, match="'bert.encoder.layer.1.intermediate.dense.weight' is missing"):
        load_auxiliary(bert)


def test_missing_bert_key_projection():
    bert = bert_state_dict()
    del bert["bert.encoder.layer.0.attention.self.key.weight"]
    with pytest.raises(ValueError, match="encoder.layer.0.attention.self.key.weight"):
        load_auxiliary(bert)


def test_inconsistent_width():
    state_dict = dict(small_vit().state_dict())
    state_dict["blocks.1.mlp.fc1.weight"] = torch.zeros(64, WIDTH)
    with pytest.raises(ValueError, match=r"'blocks.1.mlp.fc1.weight' has shape \(64, 32\), expected \(128, 32\)"):
        load_auxiliary(state_dict)


def test_unmerged_pathways_refused():
    state_dict = dict(small_vit().state_dict())
    state_dict["blocks.0.attn.qkv.parametrizations.weight.original"] = state_dict.pop("blocks.0.attn.qkv.weight")
    with pytest.raises(ValueError, match="merge_pathways"):
        load_auxiliary(state_dict)


def test_two_encoders_ambiguous():
    state_dict = dict(small_vit().state_dict())
    state_dict.update({"module." + k: v for k, v in state_dict.items()})
    with pytest.raises(ValueError, match="several prefixes"):
        load_auxiliary(state_dict)


def test_no_tensors():
    with pytest.raises(ValueError, match="No tensors"):
        load_auxiliary({"model": {"epoch": 3}})
