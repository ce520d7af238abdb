"""Hugging Face ``transformers`` models as pathway targets: attach, train, merge, round trip."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from safetensors.torch import load_file

from m2pt.checkpoints import load_auxiliary
from m2pt.pathway import (
    PathwayConfig, PathwayError, add_pathways, iter_pathway_layers, load_pathways, merge_pathways, param_groups,
    save_pathways,
)
from m2pt.pathway.module import weight_pathways
from tests.hf_models import DEPTH, WIDTH, build, save_quietly

# target -> (inputs, auxiliary of another family); the q/k/v linears of each target, in block 0.
INPUTS = {
    "ViTForImageClassification": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
    "BeitModel": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
    "VideoMAEModel": lambda: {"pixel_values": torch.randn(2, 4, 3, 32, 32)},
    "Dinov2Model": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
    "CLIPVisionModel": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
    "BertModel": lambda: {"input_ids": torch.randint(0, 50, (2, 7))},
    "RobertaForMaskedLM": lambda: {"input_ids": torch.randint(2, 50, (2, 7))},
    "Wav2Vec2ForCTC": lambda: {"input_values": torch.randn(2, 400)},
    "HubertModel": lambda: {"input_values": torch.randn(2, 400)},
    "DeiTModel": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
    "ASTModel": lambda: {"input_values": torch.randn(2, 64, 32)},
    "ViTMAEForPreTraining": lambda: {"pixel_values": torch.randn(2, 3, 32, 32), "noise": torch.rand(2, 4)},
    "XLMRobertaModel": lambda: {"input_ids": torch.randint(2, 50, (2, 7))},
    "ElectraModel": lambda: {"input_ids": torch.randint(0, 50, (2, 7))},
    "DebertaV2Model": lambda: {"input_ids": torch.randint(0, 50, (2, 7))},
    "CLIPTextModel": lambda: {"input_ids": torch.randint(2, 50, (2, 7))},
    "WavLMModel": lambda: {"input_values": torch.randn(2, 400)},
}
AUXILIARY = {"ViTForImageClassification": "BertModel", "BeitModel": "Wav2Vec2Model", "VideoMAEModel": "CLIPTextModel",
             "Dinov2Model": "ASTModel", "CLIPVisionModel": "RobertaForMaskedLM", "BertModel": "ViTModel",
             "RobertaForMaskedLM": "HubertModel", "Wav2Vec2ForCTC": "ViTModel", "HubertModel": "DeiTModel",
             "DeiTModel": "HubertModel", "ASTModel": "BertModel", "ViTMAEForPreTraining": "Wav2Vec2Model",
             "XLMRobertaModel": "DeiTModel", "ElectraModel": "ASTModel", "DebertaV2Model": "ViTModel",
             "CLIPTextModel": "Wav2Vec2Model", "WavLMModel": "BertModel"}


def _first_output(model, inputs) -> torch.Tensor:
    return model(**inputs)[0]


def _randomize_scales_(model, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in iter_pathway_layers(model):
            for pathway in weight_pathways(module):
                pathway.scale.copy_(torch.rand((), generator=generator) * 0.5 + 0.1)


@pytest.fixture(scope="module")
def auxiliaries(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("aux")
    out = {}
    for seed, name in enumerate(sorted(set(AUXILIARY.values()))):
        save_quietly(build(name, seed=100 + seed), root / name)
        out[name] = load_auxiliary(root / name)
    return out


@pytest.mark.parametrize("name", list(INPUTS))
def test_hf_target_attach_train_merge_round_trip(auxiliaries, name, tmp_path):
    aux = auxiliaries[AUXILIARY[name]]
    model = build(name, seed=1)
    cls = type(model)
    add_pathways(model, aux)
    layers = dict(iter_pathway_layers(model))
    assert len(layers) == 6 * DEPTH  # q, k, v, output projection, fc1, fc2 of every block

    # Each separate q / k / v projection took its third of the auxiliary's fused qkv rows.
    aux_state = aux.state_dict()
    for layer_name, module in layers.items():
        pathway = weight_pathways(module)[0]
        block, canonical, part = re.fullmatch(r"blocks\.(\d+)\.(.+?)(?:\[([qkv]) rows\])?", pathway.aux_name).groups()
        expected = aux_state[f"blocks.{block}.{canonical}.weight"]
        if part:
            expected = expected.chunk(3)["qkv".index(part)]
        assert torch.equal(pathway.aux_weight, expected), layer_name
    names = sorted(layers)
    assert any(n.endswith(("q_proj", "query", "query_proj")) for n in names)
    assert any(n.endswith(("v_proj", "value", "value_proj")) for n in names)

    # One training step reaches λ, W' and W.
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    inputs = INPUTS[name]()
    loss = _first_output(model, inputs).float().pow(2).mean()
    loss.backward()
    scales = [weight_pathways(m)[0].scale for m in layers.values()]
    assert all(s.grad is not None for s in scales) and any(s.grad.abs().item() > 0 for s in scales)
    optimizer.step()
    optimizer.zero_grad()

    # Merge exactly, into the same class.
    _randomize_scales_(model)
    model.eval()
    with torch.no_grad():
        unmerged = _first_output(model, inputs)
        merged_model = merge_pathways(model)
        assert type(merged_model) is cls
        merged = _first_output(merged_model, inputs)
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)

    # save_pretrained of the unmerged model is refused and writes nothing; the merged one round-trips.
    with pytest.raises(PathwayError, match="save_pretrained refused.*merge_pathways"):
        model.save_pretrained(tmp_path / "unmerged")
    assert not (tmp_path / "unmerged").exists()
    save_quietly(merged_model, tmp_path / "merged")
    reloaded = cls.from_pretrained(tmp_path / "merged").eval()
    reloaded_state, merged_state = reloaded.state_dict(), merged_model.state_dict()
    assert set(reloaded_state) == set(merged_state)
    for key, value in merged_state.items():
        assert torch.equal(reloaded_state[key], value), key
    with torch.no_grad():
        torch.testing.assert_close(_first_output(reloaded, inputs), merged, rtol=0, atol=0)


def test_hub_file_of_merged_model_holds_the_merged_weights(auxiliaries, tmp_path):
    model = build("ViTForImageClassification", seed=2)
    add_pathways(model, auxiliaries["BertModel"], scale_init=0.25)
    merged = merge_pathways(model)
    save_quietly(merged, tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    query = tensors["vit.encoder.layer.1.attention.attention.query.weight"]
    assert torch.equal(query, merged.vit.layers[1].attention.q_proj.weight.detach())
    original = build("ViTForImageClassification", seed=2).vit.layers[1].attention.q_proj.weight
    bert_query = auxiliaries["BertModel"].blocks[1].attn.qkv.weight[:WIDTH]
    torch.testing.assert_close(query, original + 0.25 * bert_query, rtol=0, atol=1e-6)


def test_hf_auxiliary_into_timm_target_fuses_qkv():
    """The reverse direction: a live HF encoder's separate q / k / v become a timm target's fused qkv rows."""
    target = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, embed_dim=WIDTH, depth=DEPTH,
                               num_heads=2, mlp_ratio=2, num_classes=3)
    aux = build("CLIPVisionModel", seed=3)
    add_pathways(target, aux)
    qkv = weight_pathways(target.blocks[1].attn.qkv)[0].aux_weight
    attention = aux.encoder.layers[1].self_attn
    assert torch.equal(qkv, torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]))
    assert torch.equal(weight_pathways(target.blocks[0].mlp.fc2)[0].aux_weight,
                       aux.encoder.layers[0].mlp.fc2.weight)


def test_layer_subset_and_aux_bias(auxiliaries):
    model = build("BertModel", seed=4)
    add_pathways(model, auxiliaries["ViTModel"], layers=("mlp.fc1", "mlp.fc2"))
    assert sorted(dict(iter_pathway_layers(model))) == [
        f"encoder.layer.{i}.{n}" for i in range(DEPTH) for n in ("intermediate.dense", "output.dense")]
    model = build("CLIPVisionModel", seed=5)
    aux = auxiliaries["ViTModel"]
    add_pathways(model, aux, aux_bias=True, scale_init=0.5)
    k_proj = model.encoder.layers[0].self_attn.k_proj
    expected = k_proj.parametrizations.bias.original + 0.5 * aux.blocks[0].attn.qkv.bias[WIDTH:2 * WIDTH]
    torch.testing.assert_close(k_proj.bias, expected, rtol=0, atol=1e-6)


def test_hf_target_pathway_state_round_trip(auxiliaries, tmp_path):
    model = build("Wav2Vec2ForCTC", seed=6)
    add_pathways(model, auxiliaries["ViTModel"])
    _randomize_scales_(model, seed=1)
    save_pathways(model, tmp_path / "state.safetensors")
    restored = load_pathways(build("Wav2Vec2ForCTC", seed=7), tmp_path / "state.safetensors").eval()
    inputs = INPUTS["Wav2Vec2ForCTC"]()
    with torch.no_grad():
        torch.testing.assert_close(_first_output(restored, inputs), _first_output(model.eval(), inputs), rtol=0, atol=0)
    with pytest.raises(PathwayError, match="save_pretrained refused"):
        restored.save_pretrained(tmp_path / "x")


def test_depth_mismatch_and_pairing(auxiliaries):
    model = build("ViTForImageClassification", seed=8)
    three = {f"blocks.{i}.{n}.weight": torch.randn(shape) for i in range(3) for n, shape in (
        ("attn.qkv", (3 * WIDTH, WIDTH)), ("attn.proj", (WIDTH, WIDTH)), ("mlp.fc1", (64, WIDTH)),
        ("mlp.fc2", (WIDTH, 64)))}
    with pytest.raises(PathwayError, match="depth mismatch: the target has 2 blocks.*auxiliary #0 has 3"):
        add_pathways(model, three)
    add_pathways(model, three, block_pairing={0: 2, 1: 0})
    q = weight_pathways(model.vit.layers[0].attention.q_proj)[0]
    assert q.aux_name == "blocks.2.attn.qkv[q rows]"
    assert torch.equal(q.aux_weight, three["blocks.2.attn.qkv.weight"][:WIDTH])


def test_no_auxiliary_names_match():
    """A hand-written layers / block_pattern whose pattern finds no block in the auxiliary."""
    target = build("BertModel", seed=9)
    config = PathwayConfig(layers=("attention.self.query",), block_pattern=r"layer\.(\d+)\.")
    aux = {f"blocks.{i}.attn.q.weight": torch.randn(WIDTH, WIDTH) for i in range(DEPTH)}
    with pytest.raises(PathwayError, match=r"no auxiliary names match.*block_pattern='layer\\\\.\(\\\\d\+\)\\\\.'"
                                           r".*blocks\.0\.attn\.q\.weight.*blocks \[0, 1\]"):
        add_pathways(target, aux, config)
    same_names = {f"encoder.layer.{i}.attention.self.query.weight": torch.randn(WIDTH, WIDTH) for i in range(DEPTH)}
    add_pathways(target, same_names, config)  # the hand map still pairs by name
    assert len(list(iter_pathway_layers(target))) == DEPTH


def test_deberta_target_is_refused_with_reason(auxiliaries):
    model = build("DebertaModel", seed=10)
    with pytest.raises(PathwayError, match="cannot take pathways exactly.*orders q, k and v per head"):
        add_pathways(model, auxiliaries["ViTModel"])
    assert not list(iter_pathway_layers(model))


def _lr_scale_by_name(model) -> dict[str, float]:
    scale_of = {id(p): g["lr_scale"] for g in param_groups(model, layer_decay=0.5) for p in g["params"]}
    return {name: scale_of[id(p)] for name, p in model.named_parameters() if p.requires_grad}


def test_param_groups_layer_decay_on_hf_targets_with_pathways(auxiliaries):
    model = build("ViTForImageClassification", seed=11)
    add_pathways(model, auxiliaries["BertModel"])
    scales = _lr_scale_by_name(model)
    depth = 2  # embeddings 0, blocks 1..2, the rest 3
    assert scales["vit.embeddings.cls_token"] == scales["vit.embeddings.patch_embeddings.projection.weight"] \
        == pytest.approx(0.5 ** (depth + 1))
    block0 = [n for n in scales if n.startswith("vit.layers.0.")]
    assert any(".parametrizations." in n for n in block0)  # W' and λ sit in their block's group
    assert all(scales[n] == pytest.approx(0.5 ** depth) for n in block0)
    assert scales["vit.layers.1.mlp.fc2.bias"] == pytest.approx(0.5)
    assert scales["classifier.weight"] == scales["vit.layernorm.weight"] == 1.0
    wav = build("Wav2Vec2Model", seed=12)
    wav_scales = _lr_scale_by_name(wav)
    assert wav_scales["feature_projection.projection.weight"] == pytest.approx(0.5 ** (depth + 1))
    assert wav_scales["encoder.pos_conv_embed.conv.parametrizations.weight.original0"] == pytest.approx(0.5 ** 3)
    assert wav_scales["encoder.layers.1.feed_forward.output_dense.weight"] == pytest.approx(0.5)


def test_inplace_merge_restores_save_pretrained(auxiliaries, tmp_path):
    model = build("BertModel", seed=13)
    add_pathways(model, auxiliaries["ViTModel"], scale_init=0.1)
    assert "save_pretrained" in model.__dict__
    merged = merge_pathways(model, inplace=True)
    assert merged is model and "save_pretrained" not in model.__dict__
    save_quietly(model, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()


def test_hf_backbone_inside_a_wrapper(auxiliaries, tmp_path):
    """An HF encoder held by a user's own module: recognised under its prefix, and its save_pretrained guarded."""

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = build("ViTModel", seed=14)
            self.head = torch.nn.Linear(WIDTH, 3)

        def forward(self, pixel_values):
            return (self.head(self.backbone(pixel_values=pixel_values)[0][:, 0]),)

    model = add_pathways(Classifier(), auxiliaries["BertModel"], scale_init=0.2)
    assert sorted(dict(iter_pathway_layers(model)))[0] == "backbone.layers.0.attention.k_proj"
    with pytest.raises(PathwayError, match="save_pretrained refused"):
        model.backbone.save_pretrained(tmp_path / "unmerged")
    merged = merge_pathways(model)
    save_quietly(merged.backbone, tmp_path / "merged")
    reloaded = type(merged.backbone).from_pretrained(tmp_path / "merged")
    for key, value in merged.backbone.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
