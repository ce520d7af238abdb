"""Hugging Face ``transformers`` encoders as auxiliary models, from saved folders and live models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2pt.checkpoints import CheckpointError, convert_checkpoint, load_auxiliary
from m2pt.pathway import PathwayError, add_pathways, iter_pathway_layers
from tests.hf_models import DEPTH, HEADS, HUB_NAMES, MLP, WIDTH, build, save_quietly


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """Every model of HUB_NAMES and DeBERTa, built once and saved with save_pretrained."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for seed, name in enumerate([*HUB_NAMES, "DebertaModel"]):
        model = build(name, seed)
        save_quietly(model, root / name)
        out[name] = (model, root / name)
    return out


def _expected(name: str, file_tensors: dict) -> dict[str, torch.Tensor]:
    """The fused block linears, built by hand from the hub key names of the saved file."""
    prefix, (qkv, proj, fc1, fc2), qkv_names, _ = HUB_NAMES[name]
    expected = {}
    for i in range(DEPTH):
        q, k, v = (prefix + qkv.format(i=i, qkv=part) for part in qkv_names)
        expected[f"blocks.{i}.attn.qkv.weight"] = torch.cat([file_tensors[f"{p}.weight"] for p in (q, k, v)])
        biases = [file_tensors.get(f"{p}.bias") for p in (q, k, v)]
        if name == "VideoMAEModel":  # hub file: q_bias and v_bias beside the bias-less linears
            base = prefix + qkv.format(i=i, qkv="")
            biases = [file_tensors[f"{base}q_bias"], None, file_tensors[f"{base}v_bias"]]
        if any(b is not None for b in biases):
            expected[f"blocks.{i}.attn.qkv.bias"] = torch.cat(
                [b if b is not None else torch.zeros(WIDTH) for b in biases])
        for template, canonical in ((proj, "attn.proj"), (fc1, "mlp.fc1"), (fc2, "mlp.fc2")):
            for param in ("weight", "bias"):
                expected[f"blocks.{i}.{canonical}.{param}"] = file_tensors[f"{prefix}{template.format(i=i)}.{param}"]
    return expected


@pytest.mark.parametrize("name", list(HUB_NAMES))
def test_every_mapped_tensor_equals_its_source(saved, name):
    model, folder = saved[name]
    file_tensors = load_file(str(folder / "model.safetensors"))
    expected = _expected(name, file_tensors)
    from_folder = load_auxiliary(folder)
    from_file = load_auxiliary(folder / "model.safetensors")
    from_live = load_auxiliary(model)  # transformers 5 in-memory names
    for aux in (from_folder, from_file, from_live):
        assert aux.source_format == HUB_NAMES[name][3]
        assert (aux.depth, aux.embed_dim, aux.mlp_hidden_dim, aux.num_heads) == (DEPTH, WIDTH, MLP, HEADS)
        state = aux.state_dict()
        assert set(state) == set(expected), name
        for key, value in expected.items():
            assert torch.equal(state[key], value), f"{name}: {key}"


@pytest.mark.parametrize("name", ["ViTModel", "VideoMAEModel", "BeitModel", "CLIPVisionModel", "Wav2Vec2Model"])
def test_fused_qkv_computes_what_the_hf_attention_projects(saved, name):
    """aux qkv(x) == [q(x); k(x); v(x)] of the live HF modules, biases included."""
    model, _ = saved[name]
    aux = load_auxiliary(model)
    x = torch.randn(3, WIDTH)
    modules = dict(model.named_modules())
    projections = {n.rpartition(".")[2]: m for n, m in modules.items()
                   if n.rpartition(".")[0].endswith(".0.attention") or n.rpartition(".")[0].endswith(".0.self_attn")
                   or n.rpartition(".")[0].endswith("0.attention.attention")}
    q, k, v = ((projections.get(a) or projections.get(b)) for a, b in
               (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")))
    expected = torch.cat([q(x), k(x), v(x)], dim=-1)
    if name == "VideoMAEModel" and q.bias is None:  # biases held by the attention module itself
        attention = modules["encoder.layer.0.attention.attention"]
        expected = expected + torch.cat([attention.q_bias, torch.zeros(WIDTH), attention.v_bias])
    torch.testing.assert_close(aux.blocks[0].attn.qkv(x), expected, rtol=0, atol=1e-6)


def test_deberta_in_proj_is_split_per_head(saved):
    model, folder = saved["DebertaModel"]
    x = torch.randn(1, 5, WIDTH)
    attention = model.encoder.layer[1].attention.self
    heads = attention.transpose_for_scores(attention.in_proj(x)).chunk(3, dim=-1)  # what DeBERTa computes
    q = heads[0] + attention.transpose_for_scores(attention.q_bias[None, None, :])
    v = heads[2] + attention.transpose_for_scores(attention.v_bias[None, None, :])
    for aux in (load_auxiliary(folder), load_auxiliary(model)):
        assert aux.source_format == "deberta" and aux.num_heads == HEADS
        fused = aux.blocks[1].attn.qkv(x).reshape(1, 5, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        torch.testing.assert_close(fused[0], q, rtol=0, atol=1e-6)
        torch.testing.assert_close(fused[1], heads[1], rtol=0, atol=1e-6)
        torch.testing.assert_close(fused[2], v, rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match="interleaves q, k and v per head.*num_heads="):
        load_auxiliary(load_file(str(folder / "model.safetensors")))
    assert load_auxiliary(load_file(str(folder / "model.safetensors")), num_heads=HEADS).num_heads == HEADS


def test_decoder_and_heads_are_dropped(saved):
    converted = convert_checkpoint(saved["ViTMAEForPreTraining"][1])
    assert converted.prefix == "vit." and converted.source_format == "hf-vit"
    assert any(k.startswith("decoder.") for k in converted.dropped)
    assert not any("decoder" in k for k in converted.state_dict)
    converted = convert_checkpoint(saved["RobertaForMaskedLM"][1])
    assert converted.prefix == "roberta." and any(k.startswith("lm_head.") for k in converted.dropped)


def test_weight_norm_is_not_taken_for_a_pathway(saved):
    """Wav2Vec2's positional conv uses torch weight_norm: '.parametrizations.weight.original0'."""
    model, folder = saved["HubertModel"]
    keys = load_file(str(folder / "model.safetensors"))
    assert any(".parametrizations.weight.original0" in k for k in keys)
    assert load_auxiliary(folder).depth == DEPTH
    target = build("Wav2Vec2Model", seed=7)
    add_pathways(target, model)  # a live HuBERT as auxiliary of a wav2vec2 target
    assert len(list(iter_pathway_layers(target))) == 6 * DEPTH


def test_clip_model_with_two_towers_is_ambiguous_and_a_prefix_selects_one(tmp_path):
    import transformers as hf

    config = hf.CLIPConfig(
        text_config=dict(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                         intermediate_size=MLP, vocab_size=50),
        vision_config=dict(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                           intermediate_size=MLP, image_size=32, patch_size=16), projection_dim=16)
    model = hf.CLIPModel(config)
    with pytest.raises(CheckpointError, match=r"several encoders.*_model\.'.*_model\.'.*prefix='"):
        load_auxiliary(model)
    assert load_auxiliary(model.vision_model).source_format == "clip"
    assert torch.equal(load_auxiliary(model.text_model).blocks[1].mlp.fc2.weight,
                       model.text_model.encoder.layers[1].mlp.fc2.weight)
    save_quietly(model, tmp_path)
    vision = load_auxiliary(tmp_path, prefix="vision_model.")
    assert vision.num_heads == HEADS  # from the nested vision_config
    assert torch.equal(vision.blocks[0].attn.qkv.weight, torch.cat(
        [getattr(model.vision_model.encoder.layers[0].self_attn, p).weight for p in ("q_proj", "k_proj", "v_proj")]))
    state = model.state_dict()
    del state["text_model.encoder.layers.1.mlp.fc1.weight"]
    with pytest.raises(CheckpointError, match="'text_model.encoder.layers.1.mlp.fc1.weight' is missing"):
        load_auxiliary(state, prefix="text_model.")
    with pytest.raises(CheckpointError, match=r"prefix='vision\.': no key.*'text_model\.'"):
        load_auxiliary(state, prefix="vision.")


def test_gated_mlp_is_refused_not_approximated(tmp_path):
    import transformers as hf

    model = hf.Dinov2Model(hf.Dinov2Config(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                                           image_size=32, patch_size=16, use_swiglu_ffn=True))
    save_quietly(model, tmp_path)
    for source in (model, model.state_dict(), tmp_path):  # in-memory gate_proj, hub weights_in
        with pytest.raises(CheckpointError, match=r"mlp\.(gate_proj|weights_in).*gated \(SwiGLU\) MLP"):
            load_auxiliary(source)


def test_deberta_relative_attention_projections_are_refused():
    import transformers as hf

    model = hf.DebertaModel(hf.DebertaConfig(
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP,
        vocab_size=50, relative_attention=True, pos_att_type=["c2p", "p2c"]))
    with pytest.raises(CheckpointError, match=r"cannot be mapped exactly.*pos_proj.*disentangled"):
        load_auxiliary(model)


def test_missing_hub_key_names_the_key(saved):
    tensors = load_file(str(saved["ViTForImageClassification"][1] / "model.safetensors"))
    del tensors["vit.encoder.layer.1.attention.attention.key.weight"]
    with pytest.raises(CheckpointError, match=r"'vit.encoder.layer.1.attention.attention.key.weight' is missing"):
        load_auxiliary(tensors)


def test_unknown_layout_lists_the_hf_families():
    with pytest.raises(CheckpointError) as info:
        load_auxiliary({"transformer.h.0.attn.c_attn.weight": torch.zeros(96, 32)})
    message = str(info.value)
    assert "transformer.h.0.attn.c_attn.weight" in message
    for family in ("bert", "deberta", "hf-vit", "dinov2", "clip", "wav2vec2", "timm", "pointmae"):
        assert f"{family} (" in message or f"{family} /" in message or f"{family} ('" in message, family


def test_config_of_other_weights_is_refused(saved, tmp_path):
    _, folder = saved["ViTModel"]
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    with pytest.raises(CheckpointError, match="hidden_size=64 but the weights have 32"):
        load_auxiliary(tmp_path)


def test_sharded_folder(saved, tmp_path):
    tensors = load_file(str(saved["BertModel"][1] / "model.safetensors"))
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for shard, names in shards.items():
        save_file({k: tensors[k].contiguous() for k in names}, str(tmp_path / shard))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: shard for shard, names in shards.items() for k in names}}))
    aux = load_auxiliary(tmp_path)
    assert torch.equal(aux.state_dict()["blocks.1.mlp.fc1.weight"],
                       tensors["encoder.layer.1.intermediate.dense.weight"])


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="holds no Hugging Face weights.*save_pretrained"):
        load_auxiliary(tmp_path)


def test_unmerged_pathway_state_still_refused(saved):
    target = build("ViTModel", seed=9)
    add_pathways(target, saved["DeiTModel"][0])
    with pytest.raises(CheckpointError, match="unmerged pathways.*merge_pathways"):
        load_auxiliary(target.state_dict())
    with pytest.raises(PathwayError, match="pathways of its own"):
        add_pathways(build("ViTModel", seed=10), target)


def test_pytorch_model_bin_folder(saved, tmp_path):
    _, folder = saved["RobertaForMaskedLM"]
    tensors = load_file(str(folder / "model.safetensors"))
    torch.save(tensors, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    aux, reference = load_auxiliary(tmp_path), load_auxiliary(folder)
    assert aux.num_heads == HEADS and aux.source.endswith("pytorch_model.bin")
    for key, value in reference.state_dict().items():
        assert torch.equal(aux.state_dict()[key], value), key


def test_weight_norm_state_dict_as_auxiliary(saved):
    model, _ = saved["Wav2Vec2Model"]
    target = build("BertModel", seed=11)
    add_pathways(target, model.state_dict())
    assert len(list(iter_pathway_layers(target))) == 6 * DEPTH


def test_unmappable_hf_auxiliary_is_a_pathway_error():
    import transformers as hf

    aux = hf.DebertaModel(hf.DebertaConfig(
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP,
        vocab_size=50, relative_attention=True, pos_att_type=["c2p"]))
    target = build("BertModel", seed=12)
    with pytest.raises(PathwayError, match=r"auxiliary #0:.*pos_proj"):
        add_pathways(target, aux)
    assert not list(iter_pathway_layers(target))


def test_transformers_5_renames_vit_in_memory(saved):
    """The premise of reading both spellings: 5.x state_dict() keys differ from the saved file's."""
    model, folder = saved["ViTModel"]
    in_memory, on_disk = set(model.state_dict()), set(load_file(str(folder / "model.safetensors")))
    assert "layers.0.attention.q_proj.weight" in in_memory and "layers.0.attention.q_proj.weight" not in on_disk
    assert "encoder.layer.0.attention.attention.query.weight" in on_disk
    assert torch.equal(load_auxiliary(model).blocks[0].attn.qkv.weight,
                       load_auxiliary(folder).blocks[0].attn.qkv.weight)


def test_unequal_query_key_value_are_refused(saved):
    tensors = load_file(str(saved["CLIPVisionModel"][1] / "model.safetensors"))
    tensors["encoder.layers.0.self_attn.k_proj.weight"] = torch.zeros(WIDTH // 2, WIDTH)
    with pytest.raises(CheckpointError, match=r"different shapes.*k_proj.weight \(16, 32\).*grouped-query"):
        load_auxiliary(tensors)
    with pytest.raises(CheckpointError, match="cannot hold q, k and v of 5 heads"):
        load_auxiliary(saved["DebertaModel"][0].state_dict(), num_heads=5)
