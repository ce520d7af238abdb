"""Every failure is a PathwayError that names the layer and leaves the model untouched."""

from __future__ import annotations

import pytest
import torch

import m2pt
from m2pt import PathwayError

from .helpers import images, randomize_pathways, tiny_vit


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_no_layer_matched_lists_names():
    with pytest.raises(PathwayError, match=r"no layer matched layers=\('nothing',\).*patch_embed"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(), layers=("nothing",))


def test_matched_module_without_weight():
    with pytest.raises(PathwayError, match=r"'blocks.0.attn' .*has no 'weight'"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(), layers=r"blocks\.0\.attn")


def test_aux_layer_missing_names_the_layer():
    aux = {k: v for k, v in tiny_vit(seed=1).state_dict().items() if not k.startswith("blocks.1.mlp.fc2")}
    target = tiny_vit()
    before = _state(target)
    with pytest.raises(PathwayError, match=r"auxiliary layer missing: target layer 'blocks.1.mlp.fc2' needs "
                                           r"'blocks.1.mlp.fc2.weight'"):
        m2pt.add_pathways(target, aux)
    assert not m2pt.has_pathways(target.blocks[0].attn.qkv)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(PathwayError, match=r"shape mismatch at 'blocks.0.mlp.fc1': target weight \(128, 32\), "
                                           r"auxiliary #0 'blocks.0.mlp.fc1.weight' \(64, 32\)"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(mlp_ratio=2.0))


def test_depth_mismatch_is_never_truncated():
    with pytest.raises(PathwayError, match="depth mismatch: the target has 2 blocks .* auxiliary #0 has 3"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(depth=3))


def test_explicit_pairing_handles_different_depths():
    aux = tiny_vit(seed=1, depth=3)
    model = m2pt.add_pathways(tiny_vit(), aux, block_pairing={0: 2, 1: 0})
    torch.testing.assert_close(model.blocks[0].attn.qkv.parametrizations.weight[0].aux_weight, aux.blocks[2].attn.qkv.weight)
    torch.testing.assert_close(model.blocks[1].attn.qkv.parametrizations.weight[0].aux_weight, aux.blocks[0].attn.qkv.weight)
    with pytest.raises(PathwayError, match=r"block_pairing names blocks that do not exist: target \[5\]"):
        m2pt.add_pathways(tiny_vit(), aux, block_pairing={5: 0})


def test_reversed_pairing():
    aux = tiny_vit(seed=1, depth=2)
    model = m2pt.add_pathways(tiny_vit(), aux, block_pairing="reversed")
    pathway = model.blocks[0].mlp.fc2.parametrizations.weight[0]
    assert pathway.aux_name == "blocks.1.mlp.fc2"
    torch.testing.assert_close(pathway.aux_weight, aux.blocks[1].mlp.fc2.weight)


def test_partial_explicit_pairing_connects_only_named_blocks():
    model = m2pt.add_pathways(tiny_vit(), tiny_vit(seed=1), block_pairing={1: 1})
    assert not m2pt.has_pathways(model.blocks[0].attn.qkv) and m2pt.has_pathways(model.blocks[1].attn.qkv)
    assert m2pt.pathway_summary(model).num_layers == 4


def test_merge_without_pathways():
    with pytest.raises(PathwayError, match="has no pathways"):
        m2pt.merge_pathways(tiny_vit())


@pytest.mark.parametrize("inplace", [False, True])
def test_non_finite_merge_is_refused_and_model_untouched(inplace):
    model = m2pt.add_pathways(tiny_vit(), tiny_vit(seed=1)).eval()
    randomize_pathways(model)
    with torch.no_grad():
        model.blocks[1].mlp.fc1.parametrizations.weight[0].aux_weight[0, 0] = float("inf")
    before = _state(model)
    with pytest.raises(PathwayError, match=r"not finite, e.g. \['blocks.1.mlp.fc1.weight'\]"):
        m2pt.merge_pathways(model, inplace=inplace)
    assert m2pt.has_pathways(model.blocks[0].attn.qkv)
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_aux_bias_requires_biases():
    with pytest.raises(PathwayError, match=r"aux_bias=True but the target layer has no bias at 'blocks.0.attn.qkv'"):
        m2pt.add_pathways(tiny_vit(qkv_bias=False), tiny_vit(seed=1), aux_bias=True)


def test_ddp_wrapped_target_is_refused():
    model = torch.nn.DataParallel(tiny_vit())
    with pytest.raises(PathwayError, match="Attach pathways to the plain model first"):
        m2pt.add_pathways(model, tiny_vit(seed=1))


def test_aux_with_pathways_is_refused():
    aux = m2pt.add_pathways(tiny_vit(seed=1), tiny_vit(seed=2))
    with pytest.raises(PathwayError, match="merge it first"):
        m2pt.add_pathways(tiny_vit(), aux)


def test_bad_config_values():
    with pytest.raises(PathwayError, match="scale_shape"):
        m2pt.PathwayConfig(scale_shape="row")
    with pytest.raises(PathwayError, match="block_pairing"):
        m2pt.PathwayConfig(block_pairing="shuffled")
    with pytest.raises(PathwayError, match="not a valid regular expression"):
        m2pt.PathwayConfig(layers="blocks.(")
    with pytest.raises(PathwayError, match="Unknown PathwayConfig fields"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(), scale_int=0.1)


def test_head_count_difference_warns():
    with pytest.warns(UserWarning, match="target attention has 2 heads, auxiliary #0 has 4"):
        m2pt.add_pathways(tiny_vit(), tiny_vit(seed=1, num_heads=4))
