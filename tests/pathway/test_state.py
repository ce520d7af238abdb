"""Saving/loading unmerged pathway models, optimizer groups, summaries."""

from __future__ import annotations

import pytest
import torch

import m2pt
from m2pt import PathwayError

from .helpers import images, randomize_pathways, tiny_vit


def test_save_and_load_without_the_auxiliary(tmp_path):
    model = m2pt.add_pathways(tiny_vit(seed=0), [tiny_vit(seed=1), tiny_vit(seed=2)], aux_bias=True,
                              scale_shape="channel", train_aux=False).eval()
    randomize_pathways(model)
    path = tmp_path / "run" / "pathways.safetensors"
    m2pt.save_pathways(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["pathways.safetensors"]  # no temporary left
    restored = m2pt.load_pathways(tiny_vit(seed=9), path).eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(images()), model(images()), atol=0, rtol=0)
    assert set(restored.state_dict()) == set(model.state_dict())
    pathway = restored.blocks[0].attn.qkv.parametrizations.weight[1]
    assert pathway.aux_index == 1 and not pathway.aux_weight.requires_grad
    assert restored.pathway_config.aux_bias is True and restored.pathway_config.scale_shape == "channel"


def test_load_refuses_other_files(tmp_path):
    from m2pt.io import save_safetensors

    other = tmp_path / "plain.safetensors"
    save_safetensors(tiny_vit().state_dict(), other)
    with pytest.raises(PathwayError, match="not a pathway-model file"):
        m2pt.load_pathways(tiny_vit(), other)
    with pytest.raises(PathwayError, match="has no pathways"):
        m2pt.save_pathways(tiny_vit(), tmp_path / "x.safetensors")


def test_param_groups_no_decay_on_lambda_and_layer_decay():
    model = m2pt.add_pathways(tiny_vit(), tiny_vit(seed=1), scale_shape="channel", scale_lr_mult=10.0)
    groups = m2pt.param_groups(model, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    qkv = model.blocks[0].attn.qkv.parametrizations.weight
    head = model.head.weight
    assert by_param[id(qkv[0].scale)]["weight_decay"] == 0.0  # 2-D per-channel λ: still no decay
    assert by_param[id(qkv[0].aux_weight)]["weight_decay"] == 0.05
    assert by_param[id(qkv.original)]["weight_decay"] == 0.05
    assert by_param[id(model.blocks[0].attn.qkv.parametrizations.weight.original)] is by_param[id(qkv[0].aux_weight)]
    assert by_param[id(model.blocks[0].attn.qkv.bias)]["weight_decay"] == 0.0
    assert by_param[id(model.pos_embed)]["weight_decay"] == 0.0
    block0_lr = by_param[id(qkv[0].aux_weight)]["lr_scale"]
    assert by_param[id(qkv[0].scale)]["lr_scale"] == pytest.approx(10.0 * block0_lr)
    assert by_param[id(head)]["lr_scale"] == 1.0
    assert block0_lr == pytest.approx(0.5 ** 2)  # blocks 0, 1 then norm/head: two decays below the top
    total = sum(p.numel() for g in groups for p in g["params"])
    assert total == sum(p.numel() for p in model.parameters())


def test_param_groups_skip_frozen_and_work_without_group_matcher():
    model = torch.nn.Sequential()
    model.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
    aux = torch.nn.Sequential()
    aux.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
    m2pt.add_pathways(model, aux, layers=r"blocks\.\d+", train_aux=False)
    groups = m2pt.param_groups(model, layer_decay=0.5)
    names = {g["name"] for g in groups}
    assert "layer1_scale" in names and "layer2_decay" in names
    assert all(p.requires_grad for g in groups for p in g["params"])


def test_summary_reports_layers_and_scales():
    model = m2pt.add_pathways(tiny_vit(), tiny_vit(seed=1), scale_init=1e-3)
    summary = m2pt.pathway_summary(model)
    assert summary.num_layers == 8 and summary.num_aux == 1 and len(summary.layers) == 8
    assert summary.scale_stats()["abs_mean"] == pytest.approx(1e-3)
    assert summary.params_aux == sum(p.numel() for n, p in model.named_parameters() if n.endswith("aux_weight"))
    text = str(summary)
    assert "pathways: 8 on 8 layers from 1 auxiliary model(s)" in text and "blocks.1.mlp.fc2" in text
    scales = m2pt.pathway_scales(model)
    assert len(scales) == 8 and all(v == pytest.approx(1e-3) for v in scales.values())
